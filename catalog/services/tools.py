"""Tool lifecycle services: propose, edit, and every status transition (versions: services.tool_versions;
when a tool's review completes, its proposed versions are approved with it).

`proposed -> in_review -> approved -> deprecated -> retired`, `rejected` from proposed/in_review,
`banned` from anywhere (lifted only by an admin's reinstate, back to in_review). Each function
checks the role (403), then the state and approval rules (409), locks the row, changes it and
writes its audit event in the same transaction.
"""

from __future__ import annotations

import datetime as dt
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
from .errors import InvalidInput, NotPermitted, TransitionNotAllowed
from .tool_versions import versions_approve_with_tool

S = ToolStatus

EDITABLE_FIELDS = (
    "name",
    "vendor",
    "kind",
    "risk_tier",
    "max_data_classification",
    "homepage",
    "description",
    "data_location",
    "pricing_note",
    "monthly_price_per_seat",
    "owner_team",
)

# action -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "request_review": (frozenset({S.PROPOSED, S.REJECTED}), S.IN_REVIEW),
    "approve": (frozenset({S.IN_REVIEW}), S.APPROVED),
    "reject": (frozenset({S.PROPOSED, S.IN_REVIEW}), S.REJECTED),
    "deprecate": (frozenset({S.APPROVED}), S.DEPRECATED),
    "retire": (frozenset({S.DEPRECATED}), S.RETIRED),
    "ban": (frozenset(set(S) - {S.BANNED}), S.BANNED),
    "reinstate": (frozenset({S.BANNED}), S.IN_REVIEW),
}
REASON_REQUIRED = frozenset({"reject", "ban", "reinstate"})


def allowed_actions(tool: AITool) -> list[str]:
    """Actions whose start state matches the tool's status (the UI shows these as buttons)."""
    return [name for name, (sources, _) in TRANSITIONS.items() if tool.status in sources]


def _full_clean(tool: AITool) -> None:
    try:
        tool.full_clean()
    except ValidationError as exc:
        raise InvalidInput("The tool is not valid.", errors=exc.message_dict) from exc


def _lock(tool: AITool) -> AITool:
    return AITool.objects.select_for_update().select_related("owner_team").get(pk=tool.pk)


def _snapshot(tool: AITool) -> dict[str, Any]:
    return {f: (str(getattr(tool, f + "_id")) if f == "owner_team" else getattr(tool, f)) for f in EDITABLE_FIELDS}


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
        actor=actor, verb="tool.propose", target=tool, payload={k: _json_value(v) for k, v in _snapshot(tool).items()}
    )
    notify(
        event="tool.proposed",
        subject=f"New AI tool proposed: {tool.name}",
        body=f"{audit.actor_label(actor)} proposed {tool.name} ({tool.vendor}, {tool.risk_tier} risk).",
        users=platform_engineers(),
        link=portal_link(f"/tools/{tool.slug}/"),
    )
    return tool


@transaction.atomic
def tool_update(*, tool: AITool, actor: Any, data: dict[str, Any]) -> AITool:
    """Edit metadata. A change of risk tier clears collected approvals; raising it on an approved
    tool sends the tool back to review, since it was approved for a lower risk."""
    tool = _lock(tool)
    if not permissions.can_edit_tool(actor, tool):
        raise NotPermitted("Your role may not edit this tool.")
    unknown = set(data) - set(EDITABLE_FIELDS)
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
    audit.record(actor=actor, verb="tool.update", target=tool, payload={"changes": changes, **extra})
    return tool


def _transition(tool: AITool, actor: Any, action: str, reason: str) -> tuple[AITool, str]:
    """Shared checks for a transition: reason, state. Returns the locked tool and its old status."""
    reason = (reason or "").strip()
    if action in REASON_REQUIRED and not reason:
        raise InvalidInput("A reason is required.", errors={"reason": ["Say why."]})
    sources, _ = TRANSITIONS[action]
    if tool.status not in sources:
        allowed = ", ".join(sorted(str(s) for s in sources))
        raise TransitionNotAllowed(
            f"Cannot {action.replace('_', ' ')} a tool that is {tool.status}; allowed from: {allowed}."
        )
    return tool, tool.status


def _finish(tool: AITool, actor: Any, action: str, old: str, reason: str, **payload: Any) -> AITool:
    tool.save()
    audit.record(
        actor=actor,
        verb=f"tool.{action}",
        target=tool,
        payload={"from": old, "to": tool.status, "reason": reason, **payload},
    )
    return tool


def _notify_decision(tool: AITool, action: str, actor: Any, reason: str) -> None:
    users = [u for u in [tool.proposed_by] if u is not None]
    notify(
        event=f"tool.{action}",
        subject=f"{tool.name} is now {tool.get_status_display().lower()}",
        body=f"{audit.actor_label(actor)}: {action.replace('_', ' ')} {tool.name}."
        + (f" Reason: {reason}" if reason else ""),
        users=users,
        link=portal_link(f"/tools/{tool.slug}/"),
    )


@transaction.atomic
def tool_request_review(*, tool: AITool, actor: Any, reason: str = "") -> AITool:
    tool = _lock(tool)
    if not permissions.can_request_review(actor, tool):
        raise NotPermitted("Only the proposer or a platform engineer may send a tool to review.")
    tool, old = _transition(tool, actor, "request_review", reason)
    tool.status = S.IN_REVIEW
    tool.approvals.all().delete()
    _finish(tool, actor, "request_review", old, reason)
    notify(
        event="tool.request_review",
        subject=f"{tool.name} awaits review",
        body=f"{audit.actor_label(actor)} sent {tool.name} to review.",
        users=platform_engineers(),
        link=portal_link("/reviews/"),
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
    tool = _lock(tool)
    if not permissions.can_review_tools(actor):
        raise NotPermitted("Only platform engineers may approve tools.")
    tool, old = _transition(tool, actor, "approve", reason)
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
    tool.status = S.APPROVED
    tool.review_due = timezone.localdate() + dt.timedelta(days=goldpath_settings.REVIEW_PERIOD_DAYS)
    tool.review_warning_sent_for = None
    approvers = list(tool.approvals.values_list("reviewer__username", flat=True))
    approver_ids = list(tool.approvals.values_list("reviewer_id", flat=True))
    tool.approvals.all().delete()
    _finish(tool, actor, "approve", old, reason, approvers=approvers, review_due=tool.review_due.isoformat())
    # the versions proposed with (or since) the tool were reviewed with it
    versions_approve_with_tool(tool=tool, actor=actor, approver_ids=approver_ids, reason=reason)
    record_usage("tool_approved", user=actor, team=tool.owner_team, tool=tool)
    _notify_decision(tool, "approve", actor, reason)
    return ApprovalResult(tool=tool, approvals=count, required=required)


def _simple(action: str, *, check, denial: str, clear_approvals: bool = False):
    target_state = TRANSITIONS[action][1]

    @transaction.atomic
    def service(*, tool: AITool, actor: Any, reason: str = "") -> AITool:
        tool = _lock(tool)
        if not check(actor):
            raise NotPermitted(denial)
        tool, old = _transition(tool, actor, action, reason)
        tool.status = target_state
        extra: dict[str, Any] = {}
        if clear_approvals:
            extra["approvals_cleared"] = tool.approvals.count()
            tool.approvals.all().delete()
        if target_state in (S.IN_REVIEW, S.REJECTED, S.BANNED, S.RETIRED):
            tool.review_due = None  # these states end the approval; deprecated keeps its review date
        _finish(tool, actor, action, old, reason, **extra)
        if action == "ban":
            record_usage("tool_banned", user=actor, team=tool.owner_team, tool=tool)
        _notify_decision(tool, action, actor, reason)
        return tool

    service.__name__ = f"tool_{action}"
    service.__doc__ = f"Move a tool to {target_state} (audited)."
    return service


tool_reject = _simple(
    "reject",
    check=permissions.can_review_tools,
    denial="Only platform engineers may reject tools.",
    clear_approvals=True,
)
tool_deprecate = _simple(
    "deprecate", check=permissions.can_review_tools, denial="Only platform engineers may deprecate tools."
)
tool_retire = _simple("retire", check=permissions.can_review_tools, denial="Only platform engineers may retire tools.")
tool_ban = _simple(
    "ban", check=permissions.can_review_tools, denial="Only platform engineers may ban tools.", clear_approvals=True
)
tool_reinstate = _simple(
    "reinstate", check=permissions.can_reinstate, denial="Only an admin may lift a ban.", clear_approvals=True
)

ACTIONS = {
    "request-review": tool_request_review,
    "approve": tool_approve,
    "reject": tool_reject,
    "deprecate": tool_deprecate,
    "retire": tool_retire,
    "ban": tool_ban,
    "reinstate": tool_reinstate,
}


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
            _finish(tool, None, "review_expired", S.APPROVED, f"Approval expired on {due.isoformat()}.")
            notify(
                event="tool.review_expired",
                subject=f"{tool.name} is back in review",
                body=f"The approval of {tool.name} expired on {due.isoformat()}; it is denied for new use until re-approved.",
                users=list(platform_engineers()) + [u for u in [tool.proposed_by] if u],
                link=portal_link(f"/tools/{tool.slug}/"),
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
                verb="tool.review_due_soon",
                target=tool,
                payload={"review_due": tool.review_due.isoformat()},
            )
            notify(
                event="tool.review_due_soon",
                subject=f"Review of {tool.name} due on {tool.review_due.isoformat()}",
                body=f"The approval of {tool.name} expires on {tool.review_due.isoformat()}. Re-review it before then.",
                users=platform_engineers(),
                link=portal_link(f"/tools/{tool.slug}/"),
            )
            warned.append(tool.slug)
    return {"expired": expired, "warned": warned}
