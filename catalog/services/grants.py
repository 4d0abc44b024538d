"""Tool grants: a team's guardian `use_aitool` on a tool, created, rebudgeted, revoked and expired.

Each write checks the role first (NotPermitted -> 403), then the state (TransitionNotAllowed -> 409),
locks the row, changes it and writes its audit event in the same transaction; the team is notified.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from .. import audit, permissions
from ..models import AccessGrant, AccessRequest, AITool, DataClassification, GrantState, Team, ToolStatus
from ..notifications import notify, platform_engineers, portal_link
from ..usage import record_usage
from .errors import InvalidInput, NotPermitted, TransitionNotAllowed

EXPIRY_WARNING_DAYS = 7


def grant_payload(grant: AccessGrant) -> dict[str, Any]:
    return {
        "team": grant.team.slug,
        "tool": grant.tool.slug,
        "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
        "max_data_classification": grant.max_data_classification or None,
        "seats": grant.seats,
        "budget_usd": str(grant.budget_usd) if grant.budget_usd is not None else None,
        "request": grant.request_id,
    }


BUDGET_MAX = Decimal("9999999999.99")  # AccessGrant.budget_usd: 12 digits, 2 decimal places


def clean_budget(value: Any) -> Decimal | None:
    """A monthly model budget in USD: blank for none, else a number >= 0 with at most 2 decimal places.
    Raises InvalidInput on budget_usd."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        amount = None
    if isinstance(value, bool) or amount is None or not amount.is_finite():
        raise InvalidInput(
            "Bad budget.", errors={"budget_usd": ["Give an amount in USD, e.g. 250.00, or leave it blank."]}
        )
    if amount < 0 or amount > BUDGET_MAX:
        raise InvalidInput("Bad budget.", errors={"budget_usd": [f"Give 0 to {BUDGET_MAX} USD."]})
    if amount != amount.quantize(Decimal("0.01")):
        raise InvalidInput("Bad budget.", errors={"budget_usd": ["Give at most 2 decimal places (cents)."]})
    return amount.quantize(Decimal("0.01"))


def grant_recipients(grant: AccessGrant) -> list:
    """Who hears of a grant's change: its requester if active, else up to 50 active team members."""
    if grant.request_id and grant.request.requester.is_active:
        return [grant.request.requester]
    return list(grant.team.members.filter(is_active=True)[:50])


def grant_open(
    *,
    actor: Any,
    team: Team,
    tool: AITool,
    expires_at: dt.datetime | None,
    max_data_classification: str,
    seats: int | None,
    request: AccessRequest | None,
    budget_usd: Any = None,
) -> AccessGrant:
    """Validate and open a grant with no role check: the caller checked it and holds the transaction."""
    tool = AITool.objects.select_for_update().get(pk=tool.pk)
    errors: dict[str, list[str]] = {}
    try:
        budget_usd = clean_budget(budget_usd)
    except InvalidInput as exc:
        errors.update(exc.errors)
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = ["Give a time in the future."]
    if max_data_classification:
        if max_data_classification not in DataClassification.values:
            errors["max_data_classification"] = [f"Choose one of: {', '.join(DataClassification.values)}."]
        elif DataClassification.rank(max_data_classification) > DataClassification.rank(tool.max_data_classification):
            errors["max_data_classification"] = [
                f"A grant narrows the tool's clearance ({tool.max_data_classification}); it cannot widen it."
            ]
    if seats is not None and seats < 1:
        errors["seats"] = ["Give at least 1 seat, or none."]
    if errors:
        raise InvalidInput("The grant is not valid.", errors=errors)
    if tool.status != ToolStatus.APPROVED:
        raise TransitionNotAllowed(
            f"{tool.name} is {tool.get_status_display().lower()}; only approved tools are granted."
        )
    if AccessGrant.objects.filter(team=team, tool=tool, state=GrantState.ACTIVE).exists():
        raise TransitionNotAllowed(f"Team {team.slug} already holds a grant for {tool.name}; revoke it first.")
    perm = assign_perm(permissions.USE_AITOOL_PERM, team.group, tool)
    grant = AccessGrant.objects.create(
        team=team,
        tool=tool,
        permission=perm,
        granted_by=actor if getattr(actor, "pk", None) else None,
        request=request,
        expires_at=expires_at,
        max_data_classification=max_data_classification or "",
        seats=seats,
        budget_usd=budget_usd,
    )
    audit.record(actor=actor, verb="grant.created", target=grant, payload=grant_payload(grant))
    record_usage("access_granted", user=actor, team=team, tool=tool, key=f"grant:{grant.pk}:granted")
    return grant


@transaction.atomic
def grant_create(
    *,
    actor: Any,
    team: Team,
    tool: AITool,
    expires_at: dt.datetime | None = None,
    max_data_classification: str = "",
    seats: int | None = None,
    budget_usd: Any = None,
) -> AccessGrant:
    """Grant a team the use of a tool directly (platform engineers; developers 403). `budget_usd`: the team's
    monthly model spend on this tool through the gateway (blank: no budget)."""
    if not permissions.can_manage_grants(actor):
        raise NotPermitted("Only platform engineers grant tool access.")
    grant = grant_open(
        actor=actor,
        team=team,
        tool=tool,
        expires_at=expires_at,
        max_data_classification=max_data_classification,
        seats=seats,
        budget_usd=budget_usd,
        request=None,
    )
    notify(
        event="grant.create",
        subject=f"{team.name} may now use {tool.name}",
        body=f"{audit.actor_label(actor)} granted team {team.slug} the use of {tool.name}.",
        users=grant_recipients(grant),
        link=portal_link("team-detail", slug=team.slug),
    )
    return grant


@transaction.atomic
def grant_update(*, grant: AccessGrant, actor: Any, budget_usd: Any) -> AccessGrant:
    """Change an active grant's monthly model budget (platform engineers; 409 for an ended grant). The gateway
    reads it on every call, so the change applies at once. Audited with before and after; no change, no event."""
    if not permissions.can_manage_grants(actor):
        raise NotPermitted("Only platform engineers change tool grants.")
    grant = AccessGrant.objects.select_for_update(of=("self",)).select_related("team", "tool").get(pk=grant.pk)
    after = clean_budget(budget_usd)
    if grant.state != GrantState.ACTIVE:
        raise TransitionNotAllowed(f"The grant is {grant.state}; only an active grant changes.")
    before = grant.budget_usd
    if before == after:
        return grant
    grant.budget_usd = after
    grant.save(update_fields=["budget_usd"])
    audit.record(
        actor=actor,
        verb="grant.updated",
        target=grant,
        payload={
            **grant_payload(grant),
            "changes": {
                "budget_usd": [str(before) if before is not None else None, grant_payload(grant)["budget_usd"]]
            },
        },
    )
    return grant


def _end(grant: AccessGrant, actor: Any, state: str, reason: str) -> AccessGrant:
    grant.state = state
    grant.ended_at = timezone.now()
    grant.ended_by = actor if getattr(actor, "pk", None) else None
    grant.end_reason = reason
    grant.save()
    # delete the guardian row: the permission is gone at once for every path that checks it
    remove_perm(permissions.USE_AITOOL_PERM, grant.team.group, grant.tool)
    grant.permission = None
    return grant


@transaction.atomic
def grant_revoke(*, grant: AccessGrant, actor: Any, reason: str = "") -> AccessGrant:
    """Revoke a grant (platform engineers; developers 403). The history row stays, marked revoked."""
    if not permissions.can_manage_grants(actor):
        raise NotPermitted("Only platform engineers revoke tool access.")
    grant = (
        AccessGrant.objects.select_for_update(of=("self",))
        .select_related("team__group", "tool", "request")
        .get(pk=grant.pk)
    )
    if grant.state != GrantState.ACTIVE:
        raise TransitionNotAllowed(f"The grant is already {grant.state}.")
    reason = (reason or "").strip()
    _end(grant, actor, GrantState.REVOKED, reason)
    audit.record(actor=actor, verb="grant.revoked", target=grant, payload={**grant_payload(grant), "reason": reason})
    notify(
        event="grant.revoke",
        subject=f"{grant.team.name} may no longer use {grant.tool.name}",
        body=f"{audit.actor_label(actor)} revoked team {grant.team.slug}'s access to {grant.tool.name}."
        + (f" Reason: {reason}" if reason else ""),
        users=grant_recipients(grant),
        link=portal_link("team-detail", slug=grant.team.slug),
    )
    return grant


def grants_expire(*, now: dt.datetime | None = None) -> dict[str, list[int]]:
    """Periodic: end grants past `expires_at` (removing their guardian row) and warn 7 days before.

    One transaction per grant; rerunning changes nothing (a warning is sent once per grant).
    """
    now = now or timezone.now()
    expired: list[int] = []
    warned: list[int] = []
    due = AccessGrant.objects.filter(state=GrantState.ACTIVE, expires_at__lte=now)
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            grant = (
                AccessGrant.objects.select_for_update(of=("self",))
                .select_related("team__group", "tool", "request")
                .get(pk=pk)
            )
            if grant.state != GrantState.ACTIVE or not grant.is_expired(now):
                continue
            _end(grant, None, GrantState.EXPIRED, f"Expired at {grant.expires_at.isoformat()}.")
            audit.record(actor=None, verb="grant.expired", target=grant, payload=grant_payload(grant))
            notify(
                event="grant.expire",
                subject=f"{grant.team.name}'s access to {grant.tool.name} has expired",
                body=f"Team {grant.team.slug}'s grant for {grant.tool.name} expired on {grant.expires_at:%Y-%m-%d}. "
                "Request access again if the team still needs it.",
                users=grant_recipients(grant),
                link=portal_link("tool-detail", slug=grant.tool.slug),
            )
            expired.append(grant.pk)
    soon = AccessGrant.objects.filter(
        state=GrantState.ACTIVE,
        expires_at__gt=now,
        expires_at__lte=now + dt.timedelta(days=EXPIRY_WARNING_DAYS),
        expiry_warning_sent_at__isnull=True,
    )
    for pk in soon.values_list("pk", flat=True):
        with transaction.atomic():
            grant = (
                AccessGrant.objects.select_for_update(of=("self",)).select_related("team", "tool", "request").get(pk=pk)
            )
            if grant.expiry_warning_sent_at is not None or grant.state != GrantState.ACTIVE:
                continue
            grant.expiry_warning_sent_at = now
            grant.save(update_fields=["expiry_warning_sent_at"])
            audit.record(actor=None, verb="grant.expiry_warning_sent", target=grant, payload=grant_payload(grant))
            notify(
                event="grant.expiry_warning",
                subject=f"{grant.team.name}'s access to {grant.tool.name} expires on {grant.expires_at:%Y-%m-%d}",
                body=f"Team {grant.team.slug}'s grant for {grant.tool.name} expires on {grant.expires_at:%Y-%m-%d}. "
                "Ask a platform engineer to extend it if the team still needs it.",
                users=list(grant_recipients(grant)) + list(platform_engineers()),
                link=portal_link("team-detail", slug=grant.team.slug),
            )
            warned.append(grant.pk)
    return {"expired": expired, "warned": warned}


__all__ = [
    "BUDGET_MAX",
    "EXPIRY_WARNING_DAYS",
    "clean_budget",
    "grant_create",
    "grant_open",
    "grant_revoke",
    "grant_update",
    "grants_expire",
]
