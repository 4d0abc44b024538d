"""State changes of the workspace agent's link and of terminal sessions: each one atomic and audited.

Called from the Channels consumers (through database_sync_to_async) and from the worker's start build."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from django.core import signing
from django.db import transaction
from django.utils import timezone

from .. import audit
from ..models import AgentState, BuildStatus, TerminalSession, Transition, Workspace, WorkspaceBuild, WorkspaceStatus

ACTIVITY_WRITE_EVERY = timedelta(seconds=30)  # terminal input moves last_activity_at at most this often
RECORDING_MAX_CHARS = 5_000_000  # asciicast text kept per session; beyond it the recording is cut
LIVE_STATES = (WorkspaceStatus.STARTING, WorkspaceStatus.RUNNING)
AGENT_VERBS = {AgentState.READY: "workspace.agent_connected", AgentState.DISCONNECTED: "workspace.agent_disconnected"}


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def agent_token_rotate(*, workspace_id: Any) -> str:
    """A new agent token for this start (the previous one stops working at once); only its hash is kept."""
    token = "gpa_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        ws = Workspace.objects.select_for_update().get(pk=workspace_id)
        ws.agent_token_sha256 = _sha256(token)
        ws.agent_state = AgentState.CONNECTING
        ws.save(update_fields=["agent_token_sha256", "agent_state", "updated_at"])
        audit.record(actor=None, verb="workspace.agent_token_rotated", target=ws)
    return token


SESSION_SALT = "goldpath.workspace-session"


def session_key(*, workspace_id: Any, build_id: int) -> str:
    """The session supervisor's key for one start: it never enters the sandbox, and lets the supervisor get a fresh
    agent token when it restarts a dead agent (the start token is spent on the agent's first hello)."""
    return signing.Signer(salt=SESSION_SALT).sign(f"{workspace_id}:{build_id}")


def agent_token_reissue(*, workspace_id: Any, key: str) -> str | None:
    """A new start token for the session holding `key`, while that start is the workspace's current one and the
    workspace runs; None otherwise (a forged key, an older start's, a stopped workspace)."""
    try:
        value = signing.Signer(salt=SESSION_SALT).unsign(key)
    except signing.BadSignature:
        return None
    ws_id, _, build_id = value.rpartition(":")
    if ws_id != str(workspace_id) or not build_id.isdigit():
        return None
    current = (
        WorkspaceBuild.objects.filter(
            workspace_id=workspace_id, transition=Transition.START, status__in=(BuildStatus.RUNNING, BuildStatus.SUCCEEDED)
        )
        .order_by("-number")
        .values_list("pk", flat=True)
        .first()
    )
    if current != int(build_id) or not Workspace.objects.filter(pk=workspace_id, status__in=LIVE_STATES).exists():
        return None
    return agent_token_rotate(workspace_id=workspace_id)


def agent_token_revoke(*, workspace_id: Any) -> None:
    """Stop and delete end the agent's right to connect (its link is closed by the session going down)."""
    Workspace.objects.filter(pk=workspace_id).update(
        agent_token_sha256="", agent_state=AgentState.NONE, updated_at=timezone.now()
    )


def agent_authenticate(*, workspace_id: Any, token: str) -> Workspace | None:
    """The workspace whose current agent token this is, while it is starting or running; else None."""
    ws = Workspace.objects.filter(pk=workspace_id).first()
    if ws is None or not ws.agent_token_sha256 or not token:
        return None
    if not hmac.compare_digest(ws.agent_token_sha256, _sha256(token)):
        return None
    return ws if ws.status in LIVE_STATES else None


def agent_link_established(*, workspace_id: Any, token: str) -> str | None:
    """The agent said hello with this start's token: swap it for a link token only the agent's memory holds.

    The start token travelled through the session's environment (bwrap and the sandbox's init keep a copy that
    any process of the workspace can read); once exchanged it is worthless. None when the token is not current."""
    new = "gpa_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        ws = Workspace.objects.select_for_update().filter(pk=workspace_id).first()
        if ws is None or not token or not hmac.compare_digest(ws.agent_token_sha256, _sha256(token)):
            return None
        ws.agent_token_sha256 = _sha256(new)
        ws.agent_state = AgentState.READY
        ws.agent_connected_at = timezone.now()
        ws.save(update_fields=["agent_token_sha256", "agent_state", "agent_connected_at", "updated_at"])
        audit.record(actor=None, verb="workspace.agent_connected", target=ws, payload={"state": AgentState.READY})
    return new


def agent_state_set(*, workspace_id: Any, state: str, token: str = "") -> None:
    """Record the link's state; a stale link (its token rotated since) changes nothing."""
    with transaction.atomic():
        ws = Workspace.objects.select_for_update().filter(pk=workspace_id).first()
        if ws is None or (token and not hmac.compare_digest(ws.agent_token_sha256, _sha256(token))):
            return
        if ws.agent_state == state:
            return
        ws.agent_state = state
        fields = ["agent_state", "updated_at"]
        if state == AgentState.READY:
            ws.agent_connected_at = timezone.now()
            fields.append("agent_connected_at")
        ws.save(update_fields=fields)
        verb = AGENT_VERBS.get(state)
        if verb:
            audit.record(actor=None, verb=verb, target=ws, payload={"state": state})


def activity_seen(*, workspace_id: Any) -> None:
    """Terminal input is real activity: autostop counts from it (written at most every ACTIVITY_WRITE_EVERY)."""
    now = timezone.now()
    Workspace.objects.filter(pk=workspace_id).exclude(last_activity_at__gt=now - ACTIVITY_WRITE_EVERY).update(
        last_activity_at=now
    )


def terminal_session_open(*, workspace: Workspace, user: Any, client: str, cols: int, rows: int) -> TerminalSession:
    with transaction.atomic():
        session = TerminalSession.objects.create(
            workspace=workspace, user=user, client=client, recorded=workspace.template.record_sessions
        )
        audit.record(
            actor=user,
            verb="terminal.opened",
            target=workspace,
            payload={"session": str(session.pk), "client": client, "size": f"{cols}x{rows}",
                     "recorded": session.recorded},
        )
        Workspace.objects.filter(pk=workspace.pk).update(last_activity_at=timezone.now())
    return session


def terminal_session_close(
    *, session_id: Any, bytes_in: int, bytes_out: int, reason: str, recording: str = "", truncated: bool = False
) -> TerminalSession | None:
    """Idempotent: a session is closed once (the first close wins)."""
    with transaction.atomic():
        session = (
            TerminalSession.objects.select_for_update().select_related("workspace", "user").filter(pk=session_id).first()
        )
        if session is None or session.closed_at is not None:
            return session
        session.closed_at = timezone.now()
        session.bytes_in, session.bytes_out = bytes_in, bytes_out
        session.close_reason = reason[:200]
        if session.recorded:
            session.recording, session.recording_truncated = recording, truncated
        session.save()
        audit.record(
            actor=session.user,
            verb="terminal.closed",
            target=session.workspace,
            payload={
                "session": str(session.pk),
                "duration_s": session.duration_s,
                "bytes_in": bytes_in,
                "bytes_out": bytes_out,
                "reason": session.close_reason,
                "recorded": session.recorded,
            },
        )
    return session


def close_dangling_sessions(*, workspace_id: Any, reason: str) -> int:
    """Sessions left open by a web process that died are closed when the workspace's agent link goes away."""
    n = 0
    for pk in TerminalSession.objects.filter(workspace_id=workspace_id, closed_at__isnull=True).values_list(
        "pk", flat=True
    ):
        s = TerminalSession.objects.get(pk=pk)
        terminal_session_close(session_id=pk, bytes_in=s.bytes_in, bytes_out=s.bytes_out, reason=reason)
        n += 1
    return n
