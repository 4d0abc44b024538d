"""Metering: the usage each upstream answer reports, read while it streams through, priced, and written as one
ModelCall row (plus a `model_call` usage event) after the last byte; run totals summed when the run ends.

Token counts never overlap: `input_tokens` is the uncached input, `cache_read_tokens` / `cache_write_tokens`
are counted apart (Anthropic reports them so; OpenAI's `cached_tokens` are subtracted from its input count).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Sum

from ..models import AgentRun, ModelCall, UsageEvent, UsageKind
from ..models.agents import RUN_IN_FLIGHT
from .pricing import SIX_PLACES, cost_usd
from .protocols import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_RESPONSES
from .rows import insert_row

_SEPARATORS = (b"\n\n", b"\r\n\r\n")


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    model: str = ""  # as the upstream named it (may be a dated snapshot of the requested alias)


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def _event_data(event: bytes) -> bytes:
    """The `data:` payload of one SSE event (lines joined), or b""."""
    parts = []
    for line in event.splitlines():
        if line.startswith(b"data:"):
            parts.append(line[5:].lstrip(b" "))
    return b"\n".join(parts)


class Meter:
    """Reads the usage of one answer. Streams: `feed(bytes)` returns the complete SSE events to send on (a
    partial event waits for its end); JSON bodies: `read_json(body)`.

    `strip_usage_chunk`: the gateway asked a Chat Completions upstream for the final usage chunk the client did
    not ask for; that chunk is read, not passed on."""

    def __init__(self, protocol: str, *, strip_usage_chunk: bool = False):
        self.protocol = protocol
        self.strip_usage_chunk = strip_usage_chunk
        self.usage = Usage()
        self._pending = b""

    # -- streams ------------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        buffer = self._pending + data
        out: list[bytes] = []
        start = 0
        while True:
            ends = [(i, len(sep)) for sep in _SEPARATORS if (i := buffer.find(sep, start)) >= 0]
            if not ends:
                break
            index, size = min(ends)
            event = buffer[start : index + size]
            start = index + size
            if self._read_event(event):
                out.append(event)
        self._pending = buffer[start:]
        return b"".join(out)

    def flush(self) -> bytes:
        """What is left at the end of the stream (an event without its blank line), read and passed on."""
        rest, self._pending = self._pending, b""
        if rest.strip() and not self._read_event(rest):
            return b""
        return rest

    def _read_event(self, event: bytes) -> bool:
        """Read usage from one event; False when the event is not to be passed on."""
        if b"usage" not in event and b"message_start" not in event:
            return True
        data = _event_data(event)
        if not data or data == b"[DONE]":
            return True
        try:
            payload = json.loads(data)
        except ValueError:
            return True
        if not isinstance(payload, dict):
            return True
        if self.protocol == ANTHROPIC_MESSAGES:
            kind = payload.get("type")
            if kind == "message_start":
                message = payload.get("message") or {}
                self.usage.model = str(message.get("model") or self.usage.model)
                self._anthropic(message.get("usage"))
            elif kind == "message_delta":
                self._anthropic(payload.get("usage"))
        elif self.protocol == OPENAI_RESPONSES:
            response = payload.get("response")
            if isinstance(response, dict) and response.get("usage"):
                self.usage.model = str(response.get("model") or self.usage.model)
                self._responses(response["usage"])
        elif self.protocol == OPENAI_CHAT and payload.get("usage"):
            self.usage.model = str(payload.get("model") or self.usage.model)
            self._chat(payload["usage"])
            if self.strip_usage_chunk and not payload.get("choices"):
                return False
        return True

    # -- whole JSON bodies --------------------------------------------------------------------------------
    def read_json(self, body: bytes) -> None:
        try:
            payload = json.loads(body)
        except ValueError:
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("usage"), dict):
            return
        self.usage.model = str(payload.get("model") or "")
        if self.protocol == ANTHROPIC_MESSAGES:
            self._anthropic(payload["usage"])
        elif self.protocol == OPENAI_RESPONSES:
            self._responses(payload["usage"])
        elif self.protocol == OPENAI_CHAT:
            self._chat(payload["usage"])

    # -- the three usage shapes ---------------------------------------------------------------------------
    def _anthropic(self, usage: Any) -> None:
        """message_start has the input side; message_delta the cumulative output (and, lately, input again)."""
        if not isinstance(usage, dict):
            return
        for field, attr in (
            ("input_tokens", "input_tokens"),
            ("output_tokens", "output_tokens"),
            ("cache_read_input_tokens", "cache_read_tokens"),
            ("cache_creation_input_tokens", "cache_write_tokens"),
        ):
            if usage.get(field) is not None:
                setattr(self.usage, attr, _int(usage[field]))

    def _responses(self, usage: dict) -> None:
        cached = _int((usage.get("input_tokens_details") or {}).get("cached_tokens"))
        self.usage.input_tokens = max(0, _int(usage.get("input_tokens")) - cached)
        self.usage.cache_read_tokens = cached
        self.usage.output_tokens = _int(usage.get("output_tokens"))

    def _chat(self, usage: dict) -> None:
        cached = _int((usage.get("prompt_tokens_details") or {}).get("cached_tokens"))
        self.usage.input_tokens = max(0, _int(usage.get("prompt_tokens")) - cached)
        self.usage.cache_read_tokens = cached
        self.usage.output_tokens = _int(usage.get("completion_tokens"))


def record_call(
    run: AgentRun,
    *,
    protocol: str,
    model: str,
    streamed: bool,
    upstream: str,
    status_code: int,
    usage: Usage,
    request_body: bytes,
    response_body: bytes,
    started: float,
) -> ModelCall:
    """After the last byte: the call's row and its usage event, in one transaction (two fixed inserts)."""
    priced_model = model or usage.model
    cost = cost_usd(
        priced_model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )
    with transaction.atomic():
        call = insert_row(
            ModelCall(
                run=run,
                team_id=run.group.team_id,
                tool_id=run.tool_id,
                protocol=protocol,
                model=(model or usage.model)[:200],
                streamed=streamed,
                upstream=upstream[:200],
                status_code=status_code,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                cost_usd=cost,
                latency_ms=int((time.perf_counter() - started) * 1000),
                request_body=request_body,
                response_body=response_body,
            )
        )
        record_model_call_usage(run, call)
    _refinalize_if_ended(run.pk)
    return call


def _refinalize_if_ended(run_id: int) -> None:
    """A call whose last byte went out as its run ended may be recorded after the worker's finalize_run_usage:
    then sum again (a fixed one-row read, not a compiled query, after the answer is sent)."""
    quote = connection.ops.quote_name
    status, pk = AgentRun._meta.get_field("status").column, AgentRun._meta.pk.column
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {quote(status)} FROM {quote(AgentRun._meta.db_table)} WHERE {quote(pk)} = %s", [run_id])
        row = cursor.fetchone()
    if row is not None and row[0] not in RUN_IN_FLIGHT:
        finalize_run_usage(run_id)


def record_model_call_usage(run: AgentRun, call: ModelCall) -> None:
    """The `model_call` usage event of one call (one insert, keyed `model_call:<id>`). Switch-over point: once
    `catalog.usage.record_usage` takes `input_tokens=`, `output_tokens=`, `model_cost=`, this may become
    `record_usage("model_call", user=requester, team=..., tool=..., key=f"model_call:{call.pk}", ...)` (which
    costs three queries instead of this one insert)."""
    requester = run.group.requester
    at = call.created_at
    team, tool = run.group.team, run.tool
    insert_row(
        UsageEvent(
            at=at,
            day=at.astimezone(dt.UTC).date(),
            kind=UsageKind.MODEL_CALL,
            user=requester,
            user_ref=requester.username[:150],
            team=team,
            team_slug=team.slug[:50],
            tool=tool,
            tool_slug=tool.slug[:50],
            input_tokens=call.input_tokens + call.cache_read_tokens + call.cache_write_tokens,
            output_tokens=call.output_tokens,
            model_cost=call.cost_usd,
            source="gateway",
            key=f"model_call:{call.pk}",
        )
    )


def finalize_run_usage(run_id: int) -> AgentRun | None:
    """Sum the run's ModelCall rows onto the run (the worker calls this when the run ends; idempotent)."""
    from .transcript import run_transcript_sha256

    calls = ModelCall.objects.filter(run_id=run_id, refused="")
    totals = calls.aggregate(
        n=Count("id"),
        input=Sum("input_tokens"),
        output=Sum("output_tokens"),
        cache_read=Sum("cache_read_tokens"),
        cache_write=Sum("cache_write_tokens"),
        cost=Sum("cost_usd"),
    )
    models = sorted(set(calls.exclude(model="").values_list("model", flat=True).distinct()))
    AgentRun.objects.filter(pk=run_id).update(
        model_calls=totals["n"] or 0,
        input_tokens=totals["input"] or 0,
        output_tokens=totals["output"] or 0,
        cache_read_tokens=totals["cache_read"] or 0,
        cache_write_tokens=totals["cache_write"] or 0,
        cost_usd=Decimal(totals["cost"] or 0).quantize(SIX_PLACES),
        models_used=models,
        transcript_sha256=run_transcript_sha256(run_id),
    )
    return AgentRun.objects.filter(pk=run_id).first()


def month_start(now: dt.datetime) -> dt.datetime:
    """The first instant of `now`'s UTC calendar month (budgets are per UTC month)."""
    now = now.astimezone(dt.UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
