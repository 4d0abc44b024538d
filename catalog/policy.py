"""The one policy decision: whether this user may use this AI tool here, and if not, why not.

    decide(user, tool, context=None) -> Decision(allowed, reasons)
    decide_many(user, tools, context=None) -> {tool.pk: Decision}   (lists: 1 query for any number of tools)

Every path that uses a tool calls it: the API, pages, and (again, at the moment of use) the Celery task
that acts, through `catalog.services.tool_use.tool_use_record`, which also writes the audit event.
Signatures are stable: callers in other features depend on them.

Context (`PolicyContext`):
- `classification`: the data classification of the code or workspace (`DataClassification` value,
  default `internal`).
- `template`: None, or any object with a `slug` attribute and an `offers_tool(tool) -> bool` method
  (the workspace template / template version passes itself; nothing else is read from it). A template
  without `offers_tool` is treated as offering every tool.

Rules (deny wins; every cause is named, none short-circuits the others):
- `not_authenticated` / `user_inactive`: no signed-in, active user.
- `tool_banned`: the tool is banned; denied to everyone, admins included.
- `tool_not_approved`: the tool's status is anything but `approved` (proposed, in review, deprecated...).
- `review_expired`: the tool is approved but its `review_due` date has passed (the periodic task will
  move it back to `in_review`; until then the decision already denies).
- `no_grant`: none of the user's teams holds a grant for the tool.
- `grant_expired`: the user's teams' grants have all passed their `expires_at` (or were swept as expired).
- `classification_above_tool`: the classification is above the tool's `max_data_classification`.
- `classification_above_grant`: every unexpired grant narrows the classification below the one asked.
- `template_does_not_offer_tool`: the template in the context does not offer the tool.
- `invalid_classification`: the context names an unknown classification.

No role bypasses a decision: admins and platform engineers use a tool through their team's grant like
everyone else (they may grant it). A user's teams are the teams whose group the user belongs to; the
grant is honoured only while its guardian `use_aitool` row for that group exists.

Cost: `decide` issues one query (grants joined to the user's groups and to the guardian row);
`decide_many` one query for the whole list.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from django.utils import timezone

from .models import AccessGrant, AITool, DataClassification, GrantState, ToolStatus

_RANK = {value: i for i, value in enumerate(DataClassification.values)}


@runtime_checkable
class TemplateLike(Protocol):
    slug: str

    def offers_tool(self, tool: AITool) -> bool: ...


@dataclass(frozen=True)
class PolicyContext:
    classification: str = DataClassification.INTERNAL
    template: Any = None  # TemplateLike | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "classification": str(self.classification),
            "template": getattr(self.template, "slug", None) if self.template is not None else None,
        }


DEFAULT_CONTEXT = PolicyContext()


@dataclass(frozen=True)
class Reason:
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass
class Decision:
    allowed: bool
    reasons: list[Reason] = field(default_factory=list)
    grant_ids: list[int] = field(default_factory=list)  # the grants that allowed it (empty on a deny)

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]

    def as_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "reasons": [r.as_dict() for r in self.reasons]}

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class _GrantRow:
    id: int
    tool_id: int
    team_slug: str
    state: str
    expires_at: dt.datetime | None
    max_data_classification: str
    enforced: bool  # the guardian row still exists


def _grant_rows(user: Any, tool_ids: Iterable[int]) -> dict[int, list[_GrantRow]]:
    """One query: the grants of the user's teams (by group membership) for these tools."""
    ids = list(tool_ids)
    rows: dict[int, list[_GrantRow]] = defaultdict(list)
    if not ids:
        return rows
    qs = AccessGrant.objects.filter(team__group__user=user, state__in=(GrantState.ACTIVE, GrantState.EXPIRED))
    qs = qs.filter(tool_id=ids[0]) if len(ids) == 1 else qs.filter(tool_id__in=ids)
    for values in qs.values_list(
        "id", "tool_id", "team__slug", "state", "expires_at", "max_data_classification", "permission_id"
    ):
        row = _GrantRow(*values[:6], enforced=values[6] is not None)
        rows[row.tool_id].append(row)
    return rows


def _evaluate(user: Any, tool: AITool, context: PolicyContext, grants: list[_GrantRow], now, today) -> Decision:
    reasons: list[Reason] = []
    name = tool.name or tool.slug
    classification = str(context.classification or DataClassification.INTERNAL)
    rank = _RANK.get(classification)
    if rank is None:
        reasons.append(
            Reason(
                "invalid_classification",
                f"'{classification}' is not a data classification (use one of {', '.join(_RANK)}).",
            )
        )
    if tool.status == ToolStatus.BANNED:
        reasons.append(Reason("tool_banned", f"{name} is banned; nobody may use it."))
    elif tool.status != ToolStatus.APPROVED:
        reasons.append(
            Reason(
                "tool_not_approved",
                f"{name} is {tool.get_status_display().lower()}, not approved; only approved tools may be used.",
            )
        )
    elif tool.review_due is not None and tool.review_due < today:
        reasons.append(
            Reason(
                "review_expired",
                f"The approval of {name} expired on {tool.review_due.isoformat()}; it must be reviewed again.",
            )
        )
    if rank is not None and rank > _RANK[tool.max_data_classification]:
        reasons.append(
            Reason(
                "classification_above_tool",
                f"{name} is cleared for {tool.max_data_classification} data at most, not {classification}.",
            )
        )
    live = [
        g for g in grants if g.enforced and g.state == GrantState.ACTIVE and not (g.expires_at and g.expires_at <= now)
    ]
    if not live:
        if grants:
            teams = ", ".join(sorted({g.team_slug for g in grants}))
            reasons.append(Reason("grant_expired", f"Your team's grant for {name} has expired ({teams})."))
        else:
            reasons.append(Reason("no_grant", f"None of your teams holds a grant for {name}; request access."))
    elif rank is not None:
        covering = [g for g in live if not g.max_data_classification or _RANK[g.max_data_classification] >= rank]
        if not covering:
            limits = ", ".join(sorted({f"{g.team_slug}: {g.max_data_classification}" for g in live}))
            reasons.append(
                Reason(
                    "classification_above_grant",
                    f"Your team's grant for {name} is limited below {classification} data ({limits}).",
                )
            )
        live = covering
    template = context.template
    if template is not None:
        offers = getattr(template, "offers_tool", None)
        if offers is not None and not offers(tool):
            reasons.append(
                Reason(
                    "template_does_not_offer_tool",
                    f"The template {getattr(template, 'slug', template)} does not offer {name}.",
                )
            )
    if reasons:
        return Decision(allowed=False, reasons=reasons)
    teams = ", ".join(sorted({g.team_slug for g in live}))
    return Decision(
        allowed=True,
        reasons=[
            Reason("granted", f"{name} is approved and granted to your team ({teams}) for {classification} data.")
        ],
        grant_ids=sorted(g.id for g in live),
    )


def _user_denial(user: Any) -> Decision | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return Decision(False, [Reason("not_authenticated", "Sign in first.")])
    if not getattr(user, "is_active", True):
        return Decision(False, [Reason("user_inactive", f"The account {user.username} is deactivated.")])
    return None


def decide(user: Any, tool: AITool, context: PolicyContext | None = None) -> Decision:
    """May `user` use `tool` in `context` right now? One query."""
    context = context or DEFAULT_CONTEXT
    denial = _user_denial(user)
    if denial is not None:
        return denial
    now = timezone.now()
    grants = _grant_rows(user, [tool.pk]).get(tool.pk, [])
    return _evaluate(user, tool, context, grants, now, timezone.localdate(now))


def decide_many(user: Any, tools: Iterable[AITool], context: PolicyContext | None = None) -> dict[int, Decision]:
    """Decisions for a list of tools with one query (for list pages and serializers)."""
    tools = list(tools)
    context = context or DEFAULT_CONTEXT
    denial = _user_denial(user)
    if denial is not None:
        return {t.pk: denial for t in tools}
    now = timezone.now()
    today = timezone.localdate(now)
    grants = _grant_rows(user, [t.pk for t in tools])
    return {t.pk: _evaluate(user, t, context, grants.get(t.pk, []), now, today) for t in tools}


REASON_CODES = (
    "not_authenticated",
    "user_inactive",
    "invalid_classification",
    "tool_banned",
    "tool_not_approved",
    "review_expired",
    "classification_above_tool",
    "no_grant",
    "grant_expired",
    "classification_above_grant",
    "template_does_not_offer_tool",
)
