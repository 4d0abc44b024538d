"""The tool lifecycle as one table.

Every rule of an action lives in its row: who may try it, whether a reason is required, the audit verb it writes,
its button label and the states it applies from. The services (catalog.services.tools), the page URLs and buttons
(catalog.urls, catalog.views.tools) and the API actions (catalog.api.tools) are all derived from it, so pages and
API cannot drift apart.

`proposed -> in_review -> approved -> deprecated -> retired`, `rejected` from proposed/in_review, `banned` from
anywhere (lifted only by an admin's reinstate, back to in_review).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import permissions
from ..models import AITool, ToolStatus

S = ToolStatus


@dataclass(frozen=True)
class ToolAction:
    name: str  # URL and API form, e.g. "request-review"
    label: str  # button text
    sources: frozenset[str]  # states it applies from
    target: str  # the state it leads to (approve: once enough approvals are collected)
    verb: str  # audit verb, past tense
    permission: Callable[[Any, AITool], bool]  # may this user try it on this tool (the role; 403 otherwise)
    denial: str  # the 403 message
    reason_required: bool
    style: str = ""  # button style
    clears_approvals: bool = False
    in_review_queue: bool = False  # offered on the review queue's rows too

    @property
    def key(self) -> str:
        """Python form: the service is `tool_<key>`."""
        return self.name.replace("-", "_")

    def applies_to(self, tool: AITool) -> bool:
        return tool.status in self.sources


def _reviewer(user: Any, tool: AITool) -> bool:
    return permissions.can_review_tools(user)


_TABLE = (
    ToolAction(
        name="request-review",
        label="Send to review",
        sources=frozenset({S.PROPOSED, S.REJECTED}),
        target=S.IN_REVIEW,
        verb="tool.review_requested",
        permission=lambda user, tool: permissions.can_request_review(user, tool),
        denial="Only the proposer or a platform engineer may send a tool to review.",
        reason_required=False,
        style="primary",
        clears_approvals=True,
        in_review_queue=True,
    ),
    ToolAction(
        name="approve",
        label="Approve",
        sources=frozenset({S.IN_REVIEW}),
        target=S.APPROVED,
        verb="tool.approved",
        permission=_reviewer,
        denial="Only platform engineers may approve tools.",
        reason_required=True,
        style="success",
        in_review_queue=True,
    ),
    ToolAction(
        name="reject",
        label="Reject",
        sources=frozenset({S.PROPOSED, S.IN_REVIEW}),
        target=S.REJECTED,
        verb="tool.rejected",
        permission=_reviewer,
        denial="Only platform engineers may reject tools.",
        reason_required=True,
        style="danger",
        clears_approvals=True,
        in_review_queue=True,
    ),
    ToolAction(
        name="deprecate",
        label="Deprecate",
        sources=frozenset({S.APPROVED}),
        target=S.DEPRECATED,
        verb="tool.deprecated",
        permission=_reviewer,
        denial="Only platform engineers may deprecate tools.",
        reason_required=False,
    ),
    ToolAction(
        name="retire",
        label="Retire",
        sources=frozenset({S.DEPRECATED}),
        target=S.RETIRED,
        verb="tool.retired",
        permission=_reviewer,
        denial="Only platform engineers may retire tools.",
        reason_required=False,
    ),
    ToolAction(
        name="ban",
        label="Ban",
        sources=frozenset(set(S) - {S.BANNED}),
        target=S.BANNED,
        verb="tool.banned",
        permission=_reviewer,
        denial="Only platform engineers may ban tools.",
        reason_required=True,
        style="danger",
        clears_approvals=True,
    ),
    ToolAction(
        name="reinstate",
        label="Reinstate",
        sources=frozenset({S.BANNED}),
        target=S.IN_REVIEW,
        verb="tool.reinstated",
        permission=lambda user, tool: permissions.can_reinstate(user),
        denial="Only an admin may lift a ban.",
        reason_required=True,
        style="primary",
        clears_approvals=True,
    ),
)

ACTIONS: dict[str, ToolAction] = {a.name: a for a in _TABLE}
# the URL regex alternatives for the action part of page routes (catalog.urls)
URL_PATTERN = "|".join(re.escape(name) for name in ACTIONS)
# the verbs of decisions shown on a tool's page (with the services' other tool and version verbs)
VERBS = tuple(a.verb for a in _TABLE)


def get(name: str) -> ToolAction | None:
    return ACTIONS.get(name)


def applicable(tool: AITool) -> list[ToolAction]:
    """The actions whose start state matches the tool's status, in table order."""
    return [a for a in _TABLE if a.applies_to(tool)]


def available(user: Any, tool: AITool) -> list[ToolAction]:
    """The actions allowed from the tool's status that the user's role may try (the service still checks the
    approval rules)."""
    return [a for a in applicable(tool) if a.permission(user, tool)]
