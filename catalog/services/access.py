"""Tool access requests: a developer asks for their team to use a tool; a platform engineer decides.

Approval opens the grant (`services.grants`). Each write checks the role first (NotPermitted -> 403), then
the state (TransitionNotAllowed -> 409), locks the row, changes it and writes its audit event in the same
transaction; the requester (or the platform engineers, for a new request) is notified.

The grant and tool-use services are re-exported here because two dozen tests and the task modules call
them as `access.<name>`; new code imports them from `services.grants` and `services.tool_use`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import audit, permissions
from ..models import AccessGrant, AccessRequest, AccessRequestStatus, AITool, Team, ToolStatus
from ..notifications import notify, platform_engineers, portal_link
from ..usage import record_usage
from .errors import InvalidInput, NotPermitted, TransitionNotAllowed
from .grants import grant_create, grant_open, grant_revoke, grant_update, grants_expire
from .tool_use import tool_use_record

# --- requests ---------------------------------------------------------------------------------


@transaction.atomic
def access_request_create(*, actor: Any, tool: AITool, team: Team, justification: str) -> AccessRequest:
    """A developer asks for their team to use an approved tool (auditors change nothing: 403)."""
    if not permissions.can_request_access(actor, team):
        raise NotPermitted("You may request access only for a team you belong to or manage.")
    justification = (justification or "").strip()
    if not justification:
        raise InvalidInput("A justification is required.", errors={"justification": ["Say why the team needs it."]})
    tool = AITool.objects.select_for_update().get(pk=tool.pk)
    if tool.status != ToolStatus.APPROVED:
        raise TransitionNotAllowed(
            f"{tool.name} is {tool.get_status_display().lower()}; access can be requested only for approved tools."
        )
    if AccessGrant.objects.in_force().filter(team=team, tool=tool).exists():
        raise TransitionNotAllowed(f"Team {team.slug} already holds a grant for {tool.name}.")
    if AccessRequest.objects.filter(team=team, tool=tool, status=AccessRequestStatus.PENDING).exists():
        raise TransitionNotAllowed(f"A request for {team.slug} to use {tool.name} is already pending.")
    req = AccessRequest.objects.create(tool=tool, team=team, requester=actor, justification=justification)
    record_usage("access_requested", user=actor, team=team, tool=tool, key=f"access_request:{req.pk}:requested")
    audit.record(
        actor=actor,
        verb="access_request.created",
        target=req,
        payload={"tool": tool.slug, "team": team.slug, "justification": justification},
    )
    notify(
        event="access_request.create",
        subject=f"{team.name} asks to use {tool.name}",
        body=f"{audit.actor_label(actor)} requested {tool.name} for team {team.slug}: {justification}",
        users=platform_engineers(),
        link=portal_link("access-requests"),
    )
    return req


def _lock_request(access_request: AccessRequest, actor: Any) -> AccessRequest:
    if not permissions.can_manage_grants(actor):
        raise NotPermitted("Only platform engineers decide access requests.")
    req = (
        AccessRequest.objects.select_for_update(of=("self",))
        .select_related("tool", "team", "requester")
        .get(pk=access_request.pk)
    )
    if req.requester_id == actor.pk:
        raise NotPermitted("Nobody decides their own access request; another platform engineer must.")
    if req.status != AccessRequestStatus.PENDING:
        raise TransitionNotAllowed(f"The request is already {req.status}.")
    return req


@transaction.atomic
def access_request_approve(
    *,
    access_request: AccessRequest,
    actor: Any,
    reason: str = "",
    expires_at: dt.datetime | None = None,
    max_data_classification: str = "",
    seats: int | None = None,
    budget_usd: Any = None,
) -> AccessRequest:
    """Approve a pending request: creates the grant (or keeps the one the team already holds)."""
    req = _lock_request(access_request, actor)
    existing = AccessGrant.objects.in_force().filter(team=req.team, tool=req.tool).first()
    grant = existing or grant_open(
        actor=actor,
        team=req.team,
        tool=req.tool,
        expires_at=expires_at,
        max_data_classification=max_data_classification,
        seats=seats,
        budget_usd=budget_usd,
        request=req,
    )
    req.status = AccessRequestStatus.APPROVED
    req.decided_by = actor
    req.decided_at = timezone.now()
    req.reason = (reason or "").strip()
    req.save()
    audit.record(
        actor=actor,
        verb="access_request.approved",
        target=req,
        payload={"tool": req.tool.slug, "team": req.team.slug, "reason": req.reason, "grant": grant.pk},
    )
    notify(
        event="access_request.approve",
        subject=f"Approved: {req.team.name} may use {req.tool.name}",
        body=f"{audit.actor_label(actor)} approved your request for {req.tool.name} (team {req.team.slug})."
        + (f" Reason: {req.reason}" if req.reason else "")
        + (f" The grant expires on {grant.expires_at:%Y-%m-%d}." if grant.expires_at else ""),
        users=[req.requester],
        link=portal_link("tool-detail", slug=req.tool.slug),
    )
    return req


@transaction.atomic
def access_request_reject(*, access_request: AccessRequest, actor: Any, reason: str) -> AccessRequest:
    reason = (reason or "").strip()
    req = _lock_request(access_request, actor)
    if not reason:
        raise InvalidInput("A reason is required.", errors={"reason": ["Say why."]})
    req.status = AccessRequestStatus.REJECTED
    req.decided_by = actor
    req.decided_at = timezone.now()
    req.reason = reason
    req.save()
    audit.record(
        actor=actor,
        verb="access_request.rejected",
        target=req,
        payload={"tool": req.tool.slug, "team": req.team.slug, "reason": reason},
    )
    notify(
        event="access_request.reject",
        subject=f"Rejected: {req.team.name} may not use {req.tool.name}",
        body=f"{audit.actor_label(actor)} rejected your request for {req.tool.name}. Reason: {reason}",
        users=[req.requester],
        link=portal_link("tool-detail", slug=req.tool.slug),
    )
    return req


__all__ = [
    "access_request_approve",
    "access_request_create",
    "access_request_reject",
    "grant_create",
    "grant_revoke",
    "grant_update",
    "grants_expire",
    "tool_use_record",
]
