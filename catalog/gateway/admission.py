"""Admission of one model call: the first failing rule answers, in the vendor's error format.

The rules, in this order:

1. credential: a live gateway credential (`x-api-key` or `Authorization: Bearer`): a run's (`gpg_`) or a
   workspace's (`gpw_`, the current start's, not revoked) -> else 401;
2. its run is in flight (starting/running), or its workspace is starting or running -> else 401;
3. body within GATEWAY_BODY_MAX_BYTES -> else 413;
4. a UTF-8 JSON object, no key twice in any object (a vendor's parser may keep the first where ours keeps the
   last), naming a model of the model-name grammar (`[A-Za-z0-9._:/-]{1,200}`) -> else 400;
5. the model is one of the run's tool version's `model_names` (exact, a dated snapshot of a listed alias, or a
   `*` pattern) -> else 403; for a workspace, one of its tools' versions allows it: the call is that tool's
   (catalog.gateway.workspaces);
6. nothing in it makes the vendor reach the network for the run (catalog.gateway.screening) -> else 403;
7. the policy decision for the run's requester (the workspace's owner), tool and classification (and the
   workspace's template) allows -> else 403 with its reasons;
8. the tool version is approved -> else 403;
9. a vendor API key is set for the team x tool (unless the upstream is `demo`) -> else 403;
10. when the grant has a budget: the team x tool's spend this UTC month is under it -> else 429; the call's row
   is written at once with a reserved cost (catalog.gateway.budget), so concurrent calls see each other.

Refusals from step 3 on are recorded (a ModelCall with `refused`, tokens 0), set the run's `gateway_refusal`
(the first reason is kept: the worker ends the run `failed` with it) and are audited (`gateway.refused`).
Steps 1-2 have no live run to charge: they are answered only. A workspace's refusal is charged to the call's
tool (to its first tool before the model is read; a workspace without tools: answered only) and does not end
anything. An unexpected failure once the run is known
sets its `gateway_refusal` too (`gateway_failed`) and is answered 500 in the vendor's format.

Cost: one statement for the credential and everything of its run that may change (catalog.gateway.context:
run status, tool and version state, requester, the grant's budget, the vendor key), one query for the policy
decision; the vendor key is decrypted once per process and ciphertext. A budget adds one short transaction
(lock the grant, sum the month, insert the row); a refusal adds its three writes.
"""

from __future__ import annotations

import json
import logging
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
from ..services.tool_version_rules import MODEL_RE
from . import budget, screening, workspaces
from .context import CallerState, run_state
from .errors import GatewayError, error_body
from .protocols import FLAVOR, METERED, UPSTREAM_SETTING

logger = logging.getLogger(__name__)

DEMO = "demo"
# request headers passed on to the upstream (never the CLI's credential, cookies or hop-by-hop headers)
FORWARDED_HEADERS = ("content-type", "accept", "anthropic-version", "anthropic-beta", "openai-beta", "user-agent")


@dataclass
class Call:
    """One admitted model call: what the upstream relay needs."""

    state: CallerState  # who the call is charged to (a run or a workspace) and its tool
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
    forward_body: bytes | None = None  # the body to send when screening removed something, else `body`
    reservation: ModelCall | None = None  # the call's row, written at admission when the grant has a budget

    @property
    def run(self) -> AgentRun | None:
        return self.state.run

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


def authenticate(request: HttpRequest) -> CallerState | workspaces.WorkspaceCredential:
    """The current state of the run (or workspace) of the request's live gateway credential (401 otherwise)."""
    raw = credential(request)
    workspace_digest = workspaces.key_hash(raw)
    if workspace_digest is not None:
        return _authenticate_workspace(workspace_digest)
    digest = identity.gateway_token_hash(raw)
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


def _authenticate_workspace(digest: str) -> workspaces.WorkspaceCredential:
    found = workspaces.workspace_credential(digest)
    if found is None:
        raise GatewayError(
            401,
            "invalid_credential",
            "Goldpath model gateway: this workspace credential is unknown or revoked (each start of a workspace "
            "issues a new one; stopping it revokes it).",
        )
    if found.status not in workspaces.LIVE:
        raise GatewayError(
            401,
            "workspace_not_running",
            f"Goldpath model gateway: workspace {found.workspace.name} is {found.status}; its credential works "
            "only while it runs.",
        )
    return found


def upstream_for(protocol: str) -> str:
    value = str(getattr(goldpath_settings, UPSTREAM_SETTING[FLAVOR[protocol]]) or "").strip()
    return DEMO if value.lower() == DEMO else value.rstrip("/")


@lru_cache(maxsize=256)
def _decrypt(ciphertext: str) -> str:
    return crypto.decrypt(ciphertext)


def admit(request: HttpRequest, protocol: str, started: float) -> Call:
    """The admitted call, or GatewayError (recorded and audited when a live run is known; an unexpected failure
    once the run is known fails the run and is a 500)."""
    found = authenticate(request)
    holder: list[CallerState | None] = [found.fallback]
    try:
        return _admit(request, protocol, started, found, holder)
    except GatewayError:
        raise
    except Exception as exc:
        raise gateway_failed(holder[0], protocol, exc) from exc


def _admit(
    request: HttpRequest,
    protocol: str,
    started: float,
    found: CallerState | workspaces.WorkspaceCredential,
    holder: list[CallerState | None],
) -> Call:
    state = holder[0]
    body, payload, model = b"", {}, ""
    reservation = None
    try:
        body = _read_body(request)
        payload, model, url_blocks = _parse(body)
        state = holder[0] = found.resolve(model, protocol)
        screened = screening.screen(protocol, payload, request.headers.get("anthropic-beta"), url_blocks)
        context = PolicyContext(classification=state.classification, template=state.template)
        decision = decide(state.requester, state.tool, context)
        if not decision.allowed:
            reasons = "; ".join(r.message for r in decision.reasons)
            where = "this run" if state.run is not None else "this workspace"
            raise GatewayError(403, "policy_denied", f"the policy denies {state.tool.slug} for {where}: {reasons}")
        if state.review_state != VersionReview.APPROVED:
            raise GatewayError(
                403,
                "tool_version_not_approved",
                f"{state.version_label} is {state.review_state}, not approved; it may not run",
            )
        upstream = upstream_for(protocol)
        vendor_key = "" if upstream == DEMO else _vendor_key(state)
        if protocol in METERED and state.budget_usd is not None:
            reservation = budget.reserve(
                state,
                protocol=protocol,
                model=model,
                streamed=payload.get("stream") is True,
                body=body,
                payload=payload,
            )
    except GatewayError as err:
        if state is not None:
            refuse(state, protocol, err, model=model, streamed=payload.get("stream") is True, request_body=body)
        raise
    headers = {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}
    if screened.beta:
        headers["anthropic-beta"] = screened.beta
    else:
        headers.pop("anthropic-beta", None)
    return Call(
        state=state,
        protocol=protocol,
        body=body,
        payload=screened.payload,
        model=model,
        stream=payload.get("stream") is True,
        upstream=upstream,
        vendor_key=vendor_key,
        started=started,
        headers=headers,
        query=request.META.get("QUERY_STRING", ""),
        forward_body=json.dumps(screened.payload).encode() if screened.changed else None,
        reservation=reservation,
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


class _DuplicateKey(ValueError):
    pass


def _parse(body: bytes) -> tuple[dict, str, list[dict]]:
    """The payload, its model and the typed blocks that may name a URL (for screening), read in one pass."""
    url_blocks: list[dict] = []
    url_types = screening.URL_BLOCK_TYPES

    def pairs(items: list[tuple[str, object]]) -> dict:
        obj = dict(items)
        if len(obj) != len(items):
            seen: set[str] = set()
            key = next(k for k, _ in items if k in seen or seen.add(k))
            raise _DuplicateKey(key)
        kind = obj.get("type")
        if isinstance(kind, str) and kind in url_types:
            url_blocks.append(obj)
        return obj

    try:
        payload = json.loads(body.decode("utf-8"), object_pairs_hook=pairs)
    except _DuplicateKey as dup:
        raise GatewayError(
            400, "duplicate_key", f"the request body gives the key {screening.shown(str(dup))} twice in one object"
        ) from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise GatewayError(400, "invalid_json", "the request body is not valid JSON (UTF-8)") from None
    if not isinstance(payload, dict):
        raise GatewayError(400, "invalid_json", "the request body must be a JSON object")
    model = payload.get("model")
    if not isinstance(model, str) or not model.strip():
        raise GatewayError(400, "missing_model", "the request names no model (`model`)")
    if not MODEL_RE.fullmatch(model):
        raise GatewayError(
            400,
            "invalid_model",
            f"the model {screening.shown(model)} is not a model name (1-200 letters, digits and . _ : / -)",
        )
    return payload, model, url_blocks


def _vendor_key(state: CallerState) -> str:
    where = f"{state.team.slug}/{state.tool.slug}"
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
    state: CallerState,
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
    run = state.run
    with transaction.atomic():
        ModelCall.objects.create(
            run=run,
            workspace=state.workspace,
            team_id=state.team.pk,
            tool_id=state.tool.pk,
            protocol=protocol,
            model=model[:200],
            streamed=streamed,
            status_code=err.status,
            refused=err.message[:500],
            request_body=request_body,
            response_body=err.body,
        )
        if run is not None:
            AgentRun.objects.filter(pk=run.pk, gateway_refusal="").update(gateway_refusal=err.message)
        audit.record(
            actor=state.actor,
            verb="gateway.refused",
            target=state.target,
            payload={
                "reason": err.message,
                "code": err.code,
                "status": err.status,
                "protocol": protocol,
                "model": model,
                "tool": state.tool.slug,
            },
        )


def gateway_failed(state: CallerState | None, protocol: str, exc: BaseException) -> GatewayError:
    """An unexpected failure while handling a call of a known run (or workspace): logged, the run's
    `gateway_refusal` set (one minimal UPDATE, the first reason kept) so the run cannot succeed, and a 500 for the
    vendor-format answer."""
    ref = state.ref if state is not None else "a workspace"
    logger.error("gateway: %s: %s call failed", ref, protocol, exc_info=exc)
    message = (
        f"the Goldpath gateway failed on a model call of this {ref.split()[0]} ({type(exc).__name__}); a platform "
        "engineer can find it in the server log"
    )
    run = state.run if state is not None else None
    if run is None:
        return GatewayError(500, "gateway_error", message)
    try:
        AgentRun.objects.filter(pk=run.pk, gateway_refusal="").update(gateway_refusal=message)
    except Exception:  # noqa: BLE001 - the database itself may be what failed; the 500 still goes out
        logger.exception("gateway: run %s: could not record the failure on the run", run.pk)
    return GatewayError(500, "gateway_error", message)
