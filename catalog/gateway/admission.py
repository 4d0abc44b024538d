"""Admission of one model call, in this order (the first failing rule answers, in the vendor's error format):

1. credential: a live gateway credential (`x-api-key` or `Authorization: Bearer`) -> else 401;
2. its run is in flight (starting/running) -> else 401;
3. body within GATEWAY_BODY_MAX_BYTES -> else 413;  4. a JSON object naming a model -> else 400;
5. the model is one of the run's tool version's `model_names` (exact, a dated snapshot of a listed alias, or a
   `*` pattern) -> else 403;
6. the policy decision for the run's requester, tool and classification allows -> else 403 with its reasons;
7. the tool version is approved -> else 403;
8. the team x tool monthly budget (UTC month) is not spent -> else 429;
9. a vendor API key is set for the team x tool (unless the upstream is `demo`) -> else 403.

Refusals from step 3 on are recorded (a ModelCall with `refused`, tokens 0), set the run's `gateway_refusal`
(the first reason is kept: the worker ends the run `failed` with it) and are audited (`gateway.refused`).
Steps 1-2 have no live run to charge: they are answered only.

Cost: one statement for the credential and everything of its run that may change (catalog.gateway.context:
run status, tool and version state, requester, the grant's budget with this month's spend only when a budget is
set, the vendor key), one query for the policy decision; the vendor key is decrypted once per process and
ciphertext. A refusal adds its three writes.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from functools import lru_cache

from django.db import transaction
from django.http import HttpRequest

from .. import audit
from ..agents import crypto, identity
from ..conf import goldpath_settings
from ..models import AgentRun, ModelCall, VersionReview
from ..models.agents import RUN_IN_FLIGHT
from ..policy import PolicyContext, decide
from .context import RunState, run_state
from .errors import GatewayError, error_body
from .pricing import SNAPSHOT
from .protocols import ANTHROPIC_COUNT_TOKENS, FLAVOR, METERED, UPSTREAM_SETTING

DEMO = "demo"
# request headers passed on to the upstream (never the CLI's credential, cookies or hop-by-hop headers)
FORWARDED_HEADERS = ("content-type", "accept", "anthropic-version", "anthropic-beta", "openai-beta", "user-agent")


@dataclass
class Call:
    """One admitted model call: what the upstream relay needs."""

    run: AgentRun
    protocol: str
    body: bytes  # exactly as the client sent it
    payload: dict
    model: str
    stream: bool
    upstream: str  # base URL, or `demo`
    vendor_key: str  # "" for the demo model
    started: float
    headers: dict[str, str] = field(default_factory=dict)
    query: str = ""

    @property
    def flavor(self) -> str:
        return FLAVOR[self.protocol]

    @property
    def metered(self) -> bool:
        return self.protocol in METERED


def credential(request: HttpRequest) -> str:
    raw = request.headers.get("x-api-key", "")
    if raw:
        return raw.strip()
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def authenticate(request: HttpRequest) -> RunState:
    """The current state of the run of the request's live gateway credential (401 otherwise)."""
    digest = identity.gateway_token_hash(credential(request))
    state = run_state(digest) if digest else None
    if state is None:
        raise GatewayError(
            401,
            "invalid_credential",
            "Goldpath model gateway: this credential is unknown, expired or revoked (agent runs get their own "
            "gateway credential; vendor keys and agent identity tokens are not accepted here).",
        )
    if state.status not in RUN_IN_FLIGHT:
        raise GatewayError(
            401,
            "run_not_in_flight",
            f"Goldpath model gateway: agent run {state.run.pk} is {state.status}; its credential works only while "
            "it runs.",
        )
    return state


def upstream_for(protocol: str) -> str:
    value = str(getattr(goldpath_settings, UPSTREAM_SETTING[FLAVOR[protocol]]) or "").strip()
    return DEMO if value.lower() == DEMO else value.rstrip("/")


def model_allowed(model: str, names: list[str]) -> bool:
    snapshot = SNAPSHOT.match(model)
    alias = snapshot["alias"] if snapshot else None
    for name in names:
        name = str(name)
        if name == model or name == alias or ("*" in name and fnmatch.fnmatchcase(model, name)):
            return True
    return False


@lru_cache(maxsize=256)
def _decrypt(ciphertext: str) -> str:
    return crypto.decrypt(ciphertext)


def admit(request: HttpRequest, protocol: str, started: float) -> Call:
    """The admitted call, or GatewayError (recorded and audited when a live run is known)."""
    state = authenticate(request)
    run = state.run
    body, payload, model = b"", {}, ""
    try:
        body = _read_body(request)
        payload, model = _parse(body)
        if not model_allowed(model, state.model_names):
            allowed = ", ".join(str(n) for n in state.model_names) or "none"
            raise GatewayError(
                403, "model_not_allowed", f"model {model} is not allowed for {state.version_label}; allowed: {allowed}"
            )
        decision = decide(state.requester, state.tool, PolicyContext(classification=run.group.classification))
        if not decision.allowed:
            reasons = "; ".join(r.message for r in decision.reasons)
            raise GatewayError(403, "policy_denied", f"the policy denies {run.tool.slug} for this run: {reasons}")
        if state.review_state != VersionReview.APPROVED:
            raise GatewayError(
                403,
                "tool_version_not_approved",
                f"{state.version_label} is {state.review_state}, not approved; it may not run",
            )
        if protocol != ANTHROPIC_COUNT_TOKENS and state.budget_usd is not None and state.spent_usd >= state.budget_usd:
            raise GatewayError(
                429,
                "budget_spent",
                f"monthly budget of ${state.budget_usd} for {run.tool.slug} spent (team {run.group.team.slug}: "
                f"${state.spent_usd:.2f} this UTC month)",
            )
        upstream = upstream_for(protocol)
        vendor_key = "" if upstream == DEMO else _vendor_key(state)
    except GatewayError as err:
        refuse(run, protocol, err, model=model, streamed=payload.get("stream") is True, request_body=body)
        raise
    headers = {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}
    return Call(
        run=run,
        protocol=protocol,
        body=body,
        payload=payload,
        model=model,
        stream=payload.get("stream") is True,
        upstream=upstream,
        vendor_key=vendor_key,
        started=started,
        headers=headers,
        query=request.META.get("QUERY_STRING", ""),
    )


def _read_body(request: HttpRequest) -> bytes:
    limit = int(goldpath_settings.GATEWAY_BODY_MAX_BYTES)
    message = f"the request body is larger than the gateway's limit of {limit} bytes"
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise GatewayError(413, "request_too_large", message)
    body = request.read(limit + 1)  # not request.body: DATA_UPLOAD_MAX_MEMORY_SIZE is not the gateway's limit
    if len(body) > limit:
        raise GatewayError(413, "request_too_large", message)
    return body


def _parse(body: bytes) -> tuple[dict, str]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise GatewayError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise GatewayError(400, "invalid_json", "the request body must be a JSON object")
    model = payload.get("model")
    if not isinstance(model, str) or not model.strip():
        raise GatewayError(400, "missing_model", "the request names no model (`model`)")
    return payload, model


def _vendor_key(state: RunState) -> str:
    where = f"{state.run.group.team.slug}/{state.run.tool.slug}"
    if not state.vendor_ciphertext:
        raise GatewayError(403, "no_vendor_key", f"no vendor API key set for {where}")
    try:
        return _decrypt(state.vendor_ciphertext)
    except ValueError:
        raise GatewayError(
            403,
            "no_vendor_key",
            f"the vendor API key for {where} cannot be decrypted (was GOLDPATH_FERNET_KEY changed?)",
        ) from None


def refuse(
    run: AgentRun,
    protocol: str,
    err: GatewayError,
    *,
    model: str = "",
    streamed: bool = False,
    request_body: bytes = b"",
) -> None:
    """Record a refusal: the call's row (tokens 0), the run's first refusal reason, and an audit event. The
    answer's exact bytes are kept on `err.body` so the response sent is the one recorded."""
    err.body = error_body(FLAVOR[protocol], err.status, err.code, err.message)
    with transaction.atomic():
        ModelCall.objects.create(
            run=run,
            team_id=run.group.team_id,
            tool_id=run.tool_id,
            protocol=protocol,
            model=model[:200],
            streamed=streamed,
            status_code=err.status,
            refused=err.message[:500],
            request_body=request_body,
            response_body=err.body,
        )
        AgentRun.objects.filter(pk=run.pk, gateway_refusal="").update(gateway_refusal=err.message)
        audit.record(
            actor=run.principal,
            verb="gateway.refused",
            target=run,
            payload={
                "reason": err.message,
                "code": err.code,
                "status": err.status,
                "protocol": protocol,
                "model": model,
            },
        )
