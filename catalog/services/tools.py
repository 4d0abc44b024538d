"""Tool lifecycle services: propose, edit, and every status transition.

Versions: services.tool_versions; when a tool's review completes, its proposed versions are approved with it.

`proposed -> in_review -> approved -> deprecated -> retired`, `rejected` from proposed/in_review,
`banned` from anywhere (lifted only by an admin's reinstate, back to in_review). The rules of each transition
(role, reason, audit verb, start states) are a row of catalog.services.tool_actions; each function locks the
row, applies them (403, 400, 409), changes it and writes its audit event in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .. import audit, permissions
from ..conf import goldpath_settings
from ..models import AITool, RiskTier, Team, ToolApproval, ToolStatus
from ..notifications import notify, platform_engineers, portal_link
from ..usage import record_usage
from . import tool_actions
from .errors import InvalidInput, NotPermitted, TransitionNotAllowed
from .tool_actions import ToolAction
from .tool_versions import versions_approve_with_tool

S = ToolStatus


def allowed_actions(tool: AITool) -> list[str]:
    """Actions (URL form, e.g. `request-review`) whose start state matches the tool's status."""
    return [a.name for a in tool_actions.applicable(tool)]


def _full_clean(tool: AITool) -> None:
    try:
        tool.full_clean()
    except ValidationError as exc:
        raise InvalidInput("The tool is not valid.", errors=exc.message_dict) from exc


def _lock(tool: AITool) -> AITool:
    return AITool.objects.select_for_update().select_related("owner_team").get(pk=tool.pk)


def _snapshot(tool: AITool) -> dict[str, Any]:
    return {
        f: (str(getattr(tool, f + "_id")) if f == "owner_team" else getattr(tool, f)) for f in AITool.EDITABLE_FIELDS
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


@transaction.atomic
def tool_propose(*, actor: Any, data: dict[str, Any]) -> AITool:
    if not permissions.can_propose_tool(actor):
        raise NotPermitted("Your role may not propose tools.")
    data = dict(data)
    owner = data.pop("owner_team", None) or Team.objects.filter(slug="platform").first()
    if owner is None:
        raise InvalidInput("No owner team.", errors={"owner_team": ["Give an owner team (no 'platform' team exists)."]})
    if AITool.objects.filter(slug=data.get("slug")).exists():
        raise InvalidInput("Slug taken.", errors={"slug": ["A tool with this slug already exists."]})
    tool = AITool(**data, owner_team=owner, status=S.PROPOSED, proposed_by=actor)
    _full_clean(tool)
    tool.save()
    audit.record(
        actor=actor, verb="tool.proposed", target=tool, payload={k: _json_value(v) for k, v in _snapshot(tool).items()}
    )
    notify(
        event="tool.proposed",
        subject=f"New AI tool proposed: {tool.name}",
        body=f"{audit.actor_label(actor)} proposed {tool.name} ({tool.vendor}, {tool.risk_tier} risk).",
        users=platform_engineers(),
        link=portal_link("tool-detail", slug=tool.slug),
    )
    return tool


@transaction.atomic
def tool_update(*, tool: AITool, actor: Any, data: dict[str, Any]) -> AITool:
    """Edit metadata. A change of risk tier clears collected approvals; raising it on an approved
    tool sends the tool back to review, since it was approved for a lower risk."""
    tool = _lock(tool)
    if not permissions.can_edit_tool(actor, tool):
        raise NotPermitted("Your role may not edit this tool.")
    unknown = set(data) - set(AITool.EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput("Unknown fields.", errors={k: ["This field cannot be changed."] for k in sorted(unknown)})
    before = _snapshot(tool)
    old_tier = tool.risk_tier
    for field, value in data.items():
        setattr(tool, field, value)
    _full_clean(tool)
    after = _snapshot(tool)
    changes = {k: [_json_value(before[k]), _json_value(after[k])] for k in after if before[k] != after[k]}
    if not changes:
        return tool
    extra: dict[str, Any] = {}
    if tool.risk_tier != old_tier:
        cleared = tool.approvals.count()
        tool.approvals.all().delete()
        extra["approvals_cleared"] = cleared
        rank = [RiskTier.LOW, RiskTier.MEDIUM, RiskTier.HIGH]
        if tool.status == S.APPROVED and rank.index(tool.risk_tier) > rank.index(old_tier):
            tool.status = S.IN_REVIEW
            tool.review_due = None
            extra["status"] = [S.APPROVED, S.IN_REVIEW]
    tool.save()
    audit.record(actor=actor, verb="tool.updated", target=tool, payload={"changes": changes, **extra})
    return tool


def _transition(tool: AITool, actor: Any, action: ToolAction, reason: str) -> tuple[str, str]:
    """The table's checks, in order: the role (403), the reason (400), the state (409).
    Returns the cleaned reason and the tool's old status."""
    if not action.permission(actor, tool):
        raise NotPermitted(action.denial)
    reason = (reason or "").strip()
    if action.reason_required and not reason:
        raise InvalidInput(
            f"A reason is required to {action.label.lower()} a tool.",
            errors={"reason": ["Give a reason; it is recorded in the audit log."]},
        )
    if not action.applies_to(tool):
        allowed = ", ".join(sorted(str(s) for s in action.sources))
        raise TransitionNotAllowed(
            f"Cannot {action.label.lower()} a tool that is {tool.status}; allowed from: {allowed}."
        )
    return reason, tool.status


def _finish(tool: AITool, actor: Any, verb: str, old: str, reason: str, **payload: Any) -> AITool:
    tool.save()
    audit.record(
        actor=actor,
        verb=verb,
        target=tool,
        payload={"from": old, "to": tool.status, "reason": reason, **payload},
    )
    return tool


def _notify_decision(tool: AITool, action: ToolAction, actor: Any, reason: str) -> None:
    users = [u for u in [tool.proposed_by] if u is not None]
    notify(
        event=f"tool.{action.key}",  # notification events are a webhook contract of their own: unchanged
        subject=f"{tool.name} is now {tool.get_status_display().lower()}",
        body=f"{audit.actor_label(actor)}: {action.label.lower()} {tool.name}."
        + (f" Reason: {reason}" if reason else ""),
        users=users,
        link=portal_link("tool-detail", slug=tool.slug),
    )


@transaction.atomic
def tool_request_review(*, tool: AITool, actor: Any, reason: str = "") -> AITool:
    action = tool_actions.ACTIONS["request-review"]
    tool = _lock(tool)
    reason, old = _transition(tool, actor, action, reason)
    tool.status = action.target
    tool.approvals.all().delete()
    _finish(tool, actor, action.verb, old, reason)
    notify(
        event="tool.request_review",
        subject=f"{tool.name} awaits review",
        body=f"{audit.actor_label(actor)} sent {tool.name} to review.",
        users=platform_engineers(),
        link=portal_link("review-queue"),
    )
    return tool


@dataclass
class ApprovalResult:
    tool: AITool
    approvals: int
    required: int

    @property
    def complete(self) -> bool:
        return self.tool.status == S.APPROVED


@transaction.atomic
def tool_approve(*, tool: AITool, actor: Any, reason: str = "") -> ApprovalResult:
    """Record an approval (a reason is required, pages and API alike); the tool is approved once it has its
    required number of distinct approvers, none of them its proposer."""
    action = tool_actions.ACTIONS["approve"]
    tool = _lock(tool)
    reason, old = _transition(tool, actor, action, reason)
    if tool.proposed_by_id == actor.pk:
        raise TransitionNotAllowed("You proposed this tool; another platform engineer must approve it.")
    if tool.approvals.filter(reviewer=actor).exists():
        raise TransitionNotAllowed(
            "You already approved this tool; a second, different platform engineer must approve it."
        )
    ToolApproval.objects.create(tool=tool, reviewer=actor, reason=reason)
    count = tool.approvals.count()
    required = tool.required_approvals
    if count < required:
        audit.record(
            actor=actor,
            verb="tool.approval_recorded",
            target=tool,
            payload={"approvals": count, "required": required, "reason": reason},
        )
        return ApprovalResult(tool=tool, approvals=count, required=required)
    tool.status = action.target
    tool.review_due = timezone.localdate() + dt.timedelta(days=goldpath_settings.REVIEW_PERIOD_DAYS)
    tool.review_warning_sent_for = None
    approvers = list(tool.approvals.values_list("reviewer__username", flat=True))
    approver_ids = list(tool.approvals.values_list("reviewer_id", flat=True))
    tool.approvals.all().delete()
    _finish(tool, actor, action.verb, old, reason, approvers=approvers, review_due=tool.review_due.isoformat())
    # the versions proposed with (or since) the tool were reviewed with it
    versions_approve_with_tool(tool=tool, actor=actor, approver_ids=approver_ids, reason=reason)
    record_usage("tool_approved", user=actor, team=tool.owner_team, tool=tool)
    _notify_decision(tool, action, actor, reason)
    return ApprovalResult(tool=tool, approvals=count, required=required)


def _simple(name: str):
    """The service of a table row that only moves the tool to its target state."""
    action = tool_actions.ACTIONS[name]

    @transaction.atomic
    def service(*, tool: AITool, actor: Any, reason: str = "") -> AITool:
        tool = _lock(tool)
        reason, old = _transition(tool, actor, action, reason)
        tool.status = action.target
        extra: dict[str, Any] = {}
        if action.clears_approvals:
            extra["approvals_cleared"] = tool.approvals.count()
            tool.approvals.all().delete()
        if action.target in (S.IN_REVIEW, S.REJECTED, S.BANNED, S.RETIRED):
            tool.review_due = None  # these states end the approval; deprecated keeps its review date
        _finish(tool, actor, action.verb, old, reason, **extra)
        if action.target == S.BANNED:
            record_usage("tool_banned", user=actor, team=tool.owner_team, tool=tool)
        _notify_decision(tool, action, actor, reason)
        return tool

    service.__name__ = f"tool_{action.key}"
    service.__qualname__ = service.__name__
    service.__doc__ = f"{action.label} a tool: move it to {action.target} (audited as {action.verb})."
    return service


tool_reject = _simple("reject")
tool_deprecate = _simple("deprecate")
tool_retire = _simple("retire")
tool_ban = _simple("ban")
tool_reinstate = _simple("reinstate")

# action name (URL form) -> its service, one per row of the table (a row without a service fails at import)
SERVICES: dict[str, Callable[..., Any]] = {name: globals()[f"tool_{a.key}"] for name, a in tool_actions.ACTIONS.items()}


def tool_act(*, name: str, tool: AITool, actor: Any, reason: str = "") -> AITool | ApprovalResult:
    """Run the lifecycle action `name` (pages and API call this one entry point)."""
    if name not in SERVICES:
        raise InvalidInput("Unknown action.", errors={"action": [f"Choose one of: {', '.join(SERVICES)}."]})
    return SERVICES[name](tool=tool, actor=actor, reason=reason)


def tools_review_due(*, today: dt.date | None = None) -> dict[str, list[str]]:
    """Periodic: warn before a review falls due and send expired approvals back to review.

    Each tool is handled in its own transaction, so one failure does not hold back the rest,
    and rerunning the same day changes nothing.
    """
    today = today or timezone.localdate()
    warn_before = dt.timedelta(days=goldpath_settings.REVIEW_WARNING_DAYS)
    expired: list[str] = []
    warned: list[str] = []
    for pk in AITool.objects.filter(status=S.APPROVED, review_due__lte=today).values_list("pk", flat=True):
        with transaction.atomic():
            tool = AITool.objects.select_for_update().get(pk=pk)
            if tool.status != S.APPROVED or tool.review_due is None or tool.review_due > today:
                continue
            due = tool.review_due
            tool.status = S.IN_REVIEW
            tool.review_due = None
            tool.approvals.all().delete()
            _finish(tool, None, "tool.review_expired", S.APPROVED, f"Approval expired on {due.isoformat()}.")
            notify(
                event="tool.review_expired",
                subject=f"{tool.name} is back in review",
                body=f"The approval of {tool.name} expired on {due.isoformat()}; it is denied for new use until re-approved.",
                users=list(platform_engineers()) + [u for u in [tool.proposed_by] if u],
                link=portal_link("tool-detail", slug=tool.slug),
            )
            expired.append(tool.slug)
    soon = AITool.objects.filter(status=S.APPROVED, review_due__gt=today, review_due__lte=today + warn_before)
    for pk in soon.values_list("pk", flat=True):
        with transaction.atomic():
            tool = AITool.objects.select_for_update().get(pk=pk)
            if tool.review_warning_sent_for == tool.review_due:
                continue
            tool.review_warning_sent_for = tool.review_due
            tool.save(update_fields=["review_warning_sent_for", "updated_at"])
            audit.record(
                actor=None,
                verb="tool.review_warning_sent",
                target=tool,
                payload={"review_due": tool.review_due.isoformat()},
            )
            notify(
                event="tool.review_due_soon",
                subject=f"Review of {tool.name} due on {tool.review_due.isoformat()}",
                body=f"The approval of {tool.name} expires on {tool.review_due.isoformat()}. Re-review it before then.",
                users=platform_engineers(),
                link=portal_link("tool-detail", slug=tool.slug),
            )
            warned.append(tool.slug)
    return {"expired": expired, "warned": warned}
