"""Metering: the usage an upstream answer reports, priced and written as one ModelCall row per call.

Metering: the usage each upstream answer reports, read while it streams through, priced, and written as one
ModelCall row (plus a `model_call` usage event) after the last byte; run totals summed when the run ends.

Token counts never overlap: `input_tokens` is the uncached input, `cache_read_tokens` / `cache_write_tokens`
are counted apart (Anthropic reports them so; OpenAI's `cached_tokens` are subtracted from its input count).

Output tokens arrive only with a stream's closing usage (Anthropic `message_delta`, Responses
`response.completed`, Chat's usage chunk). A stream that ends before it (the client hung up, the upstream broke
off) is charged at least the text it relayed: characters of the text, thinking and tool-argument deltas / 4
(`Meter.settle`; logged). The count is made from the relayed bytes only then, so a complete stream costs nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Sum

from ..models import AgentRun, ModelCall, UsageEvent, UsageKind
from ..models.agents import RUN_IN_FLIGHT
from ..services.tool_version_rules import MODEL_RE
from .context import CallerState
from .pricing import SIX_PLACES, cost_usd
from .protocols import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_RESPONSES
from .rows import insert_row, update_row
from .transcript import run_transcript_sha256

logger = logging.getLogger(__name__)

_SEPARATORS = (b"\n\n", b"\r\n\r\n")
_EVENT_END = re.compile(rb"\r?\n\r?\n")


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


def model_name(value: Any) -> str:
    """A model name an upstream reported, as it may be stored: as is when it fits the model-name grammar, else
    JSON-escaped ASCII (never a NUL or lone surrogate in a text column)."""
    text = value if isinstance(value, str) else str(value or "")
    return text if not text or MODEL_RE.fullmatch(text) else json.dumps(text[:100])[:200]


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
        self.final = False  # the closing usage (with the output count) was read
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
                self.usage.model = model_name(message.get("model")) or self.usage.model
                self._anthropic(message.get("usage"))
            elif kind == "message_delta" and isinstance(payload.get("usage"), dict):
                self._anthropic(payload["usage"])
                self.final = True
        elif self.protocol == OPENAI_RESPONSES:
            response = payload.get("response")
            if isinstance(response, dict) and isinstance(response.get("usage"), dict):
                self.usage.model = model_name(response.get("model")) or self.usage.model
                self._responses(response["usage"])
                self.final = True
        elif self.protocol == OPENAI_CHAT and isinstance(payload.get("usage"), dict):
            self.usage.model = model_name(payload.get("model")) or self.usage.model
            self._chat(payload["usage"])
            self.final = True
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
        self.usage.model = model_name(payload.get("model"))
        if self.protocol == ANTHROPIC_MESSAGES:
            self._anthropic(payload["usage"])
        elif self.protocol == OPENAI_RESPONSES:
            self._responses(payload["usage"])
        elif self.protocol == OPENAI_CHAT:
            self._chat(payload["usage"])

    # -- streams that ended early ---------------------------------------------------------------------------
    def settle(self, usage: Usage, relayed: bytes, ref: object) -> Usage:
        """`usage` of a stream whose relayed bytes were `relayed`: unchanged when the closing usage was read,
        else with output tokens of at least the relayed text's characters / 4 (1 for any text)."""
        if self.final or not relayed:
            return usage
        chars = relayed_chars(self.protocol, relayed)
        estimate = chars // 4 or (1 if chars else 0)
        if estimate > usage.output_tokens:
            logger.info(
                "gateway: %s: a %s stream ended before its usage; %d output tokens estimated from %d "
                "relayed characters (reported: %d)",
                ref,
                self.protocol,
                estimate,
                chars,
                usage.output_tokens,
            )
            usage.output_tokens = estimate
        return usage

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


def relayed_chars(protocol: str, data: bytes) -> int:
    """Characters of generated text in SSE events: Anthropic text / input-JSON / thinking deltas, Responses
    `*.delta` strings (output text, function and custom tool arguments, reasoning), Chat `delta.content`,
    reasoning and tool-call arguments."""
    chars = 0
    for event in _EVENT_END.split(data):
        payload = _event_data(event)
        if b"delta" not in payload:
            continue
        try:
            obj = json.loads(payload)
        except ValueError:
            continue
        if isinstance(obj, dict):
            chars += _delta_chars(protocol, obj)
    return chars


def _str_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def _delta_chars(protocol: str, obj: dict) -> int:
    if protocol == ANTHROPIC_MESSAGES:
        delta = obj.get("delta")
        if obj.get("type") != "content_block_delta" or not isinstance(delta, dict):
            return 0
        return sum(_str_len(delta.get(key)) for key in ("text", "partial_json", "thinking"))
    if protocol == OPENAI_RESPONSES:
        kind = obj.get("type")
        return _str_len(obj.get("delta")) if isinstance(kind, str) and kind.endswith(".delta") else 0
    chars = 0
    for choice in obj.get("choices") if isinstance(obj.get("choices"), list) else ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        chars += sum(_str_len(delta.get(key)) for key in ("content", "reasoning_content", "reasoning"))
        for call in delta.get("tool_calls") if isinstance(delta.get("tool_calls"), list) else ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                chars += _str_len(function.get("arguments"))
    return chars


def record_call(
    state: CallerState,
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
    reservation: ModelCall | None = None,
) -> ModelCall:
    """After the last byte: the call's row and its usage event, in one transaction (two fixed statements). A call
    admitted against a budget already has its row (`reservation`, with a reserved cost): it is overwritten."""
    priced_model = model or usage.model
    cost = cost_usd(
        priced_model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )
    call = reservation or ModelCall(
        run=state.run, workspace=state.workspace, team_id=state.team.pk, tool_id=state.tool.pk, protocol=protocol
    )
    call.model = model_name(model or usage.model)[:200]
    call.streamed = streamed
    call.upstream = upstream[:200]
    call.status_code = status_code
    call.input_tokens = usage.input_tokens
    call.output_tokens = usage.output_tokens
    call.cache_read_tokens = usage.cache_read_tokens
    call.cache_write_tokens = usage.cache_write_tokens
    call.cost_usd = cost
    call.latency_ms = int((time.perf_counter() - started) * 1000)
    call.request_body = request_body
    call.response_body = response_body
    with transaction.atomic():
        if reservation is not None:
            update_row(call)
        else:
            insert_row(call)
        record_model_call_usage(state, call)
    if state.run is not None:
        _refinalize_if_ended(state.run.pk)
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


def record_model_call_usage(state: CallerState, call: ModelCall) -> None:
    """The `model_call` usage event of one call (one insert, keyed `model_call:<id>`), a run's or a workspace's
    alike (a workspace's names its template), so reports count both the same way. Switch-over point: once
    `catalog.usage.record_usage` takes `input_tokens=`, `output_tokens=`, `model_cost=`, this may become
    `record_usage("model_call", user=requester, team=..., tool=..., key=f"model_call:{call.pk}", ...)` (which
    costs three queries instead of this one insert)."""
    requester = state.requester
    at = call.created_at
    team, tool = state.team, state.tool
    template = state.template.slug[:50] if state.template is not None else ""
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
            template_slug=template,
            input_tokens=call.input_tokens + call.cache_read_tokens + call.cache_write_tokens,
            output_tokens=call.output_tokens,
            model_cost=call.cost_usd,
            source="gateway",
            key=f"model_call:{call.pk}",
        )
    )


def finalize_run_usage(run_id: int) -> AgentRun | None:
    """Sum the run's ModelCall rows onto the run (the worker calls this when the run ends; idempotent)."""
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
