"""The built-in out-of-policy provider: grants still active for a tool nobody may use now."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.utils import timezone

from . import selectors
from .models import AccessGrant, GrantState, ToolStatus
from .numbers import small_int
from .policy import Reason
from .policy_hooks import OutOfPolicyItem
from .services.access import grant_revoke
from .services.errors import DomainError


def grant_reasons(grant: AccessGrant, now, today) -> list[Reason]:
    tool = grant.tool
    reasons = []
    if tool.status == ToolStatus.BANNED:
        reasons.append(Reason("tool_banned", f"{tool.name} is banned."))
    elif tool.status != ToolStatus.APPROVED:
        reasons.append(Reason("tool_not_approved", f"{tool.name} is {tool.get_status_display().lower()}."))
    elif tool.review_due is not None and tool.review_due < today:
        reasons.append(Reason("review_expired", f"The approval of {tool.name} expired on {tool.review_due}."))
    if grant.is_expired(now):
        reasons.append(Reason("grant_expired", f"The grant expired at {grant.expires_at:%Y-%m-%d %H:%M} UTC."))
    return reasons


class GrantProvider:
    kind = "grant"
    actions = ("revoke",)

    def queryset(self, user: Any):
        now = timezone.now()
        return (
            selectors.visible_grants(user)
            .filter(state=GrantState.ACTIVE)
            .filter(
                ~Q(tool__status=ToolStatus.APPROVED)
                | Q(tool__review_due__lt=timezone.localdate(now))
                | Q(expires_at__lte=now)
            )
            .order_by("tool__slug", "team__slug")
        )

    def items(self, user: Any):
        now = timezone.now()
        today = timezone.localdate(now)
        for grant in self.queryset(user):
            yield OutOfPolicyItem(
                kind=self.kind,
                id=str(grant.pk),
                label=f"{grant.team.slug} may use {grant.tool.name}",
                tool=grant.tool.slug,
                team=grant.team.slug,
                owner=grant.granted_by.username if grant.granted_by else None,
                reasons=grant_reasons(grant, now, today),
                url=f"/teams/{grant.team.slug}/",
                actions=self.actions,
            )

    def act(self, *, actor: Any, action: str, ids: list[str], reason: str) -> dict[str, Any]:
        done: list[str] = []
        failed: dict[str, str] = {}
        grants = {
            str(g.pk): g for g in self.queryset(actor).filter(pk__in=[n for n in map(small_int, ids) if n is not None])
        }
        for item_id in ids:
            grant = grants.get(str(item_id))
            if grant is None:
                failed[str(item_id)] = "not found, or no longer out of policy"
                continue
            try:
                grant_revoke(grant=grant, actor=actor, reason=reason or "Out of policy.")
                done.append(str(item_id))
            except DomainError as exc:
                failed[str(item_id)] = exc.message
        return {"done": done, "failed": failed}
