"""What is out of policy: objects still using a tool their users may not use now.

The causes: banned, not approved, review or grant expired, data above the tool's clearance, no longer offered by
the template. The built-in providers:

- `grant`: an active grant for a tool nobody may use now; action `revoke`.
- `workspace`: a live workspace whose owner may no longer use one of its tools (the policy decision for the
  owner, with the workspace's classification and template version); action `stop` while it is running.
- `agent_run`: a pending or running agent run whose requester may no longer use its tool; action `cancel`
  (cancels the run's agent group: its other runs stop too).

`out_of_policy_providers` is every provider by kind: these built-in ones, unless a host registered its own of the
same kind (catalog.policy_hooks). `out_of_policy_items` is the one listing for the page and
`GET /api/v1/out-of-policy/`; the bulk action is catalog.services.out_of_policy. Each provider lists only what the user may read (the selectors) and acts through
the object's own service (grant_revoke, workspace_stop, agent_group_cancel), which writes its audit event.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from . import selectors
from .models import RUN_ACTIVE, AccessGrant, AgentGroupStatus, GrantState, ToolStatus, WorkspaceStatus
from .numbers import small_int
from .policy import PolicyContext, Reason, decide_many
from .policy_hooks import OutOfPolicyItem, OutOfPolicyProvider, registered_out_of_policy_providers
from .services.agent_groups import agent_group_cancel
from .services.errors import DomainError
from .services.grants import grant_revoke
from .services.workspaces import TRANSITIONS, workspace_stop

NOT_FOUND = "not found, or no longer out of policy"


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


def _ids(ids: list[str]) -> list[int]:
    return [n for n in map(small_int, ids) if n is not None]


def _act_each(ids: list[str], objects: dict[str, Any], act) -> dict[str, Any]:
    """Call `act(obj)` for each id (each in the caller's transaction); a domain error fails that item only."""
    done: list[str] = []
    failed: dict[str, str] = {}
    for item_id in ids:
        obj = objects.get(str(item_id))
        if obj is None:
            failed[str(item_id)] = NOT_FOUND
            continue
        try:
            act(obj)
            done.append(str(item_id))
        except DomainError as exc:
            failed[str(item_id)] = exc.message
    return {"done": done, "failed": failed}


class GrantProvider:
    kind = "grant"
    label = "Grant"
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
                url=reverse("goldpath:team-detail", kwargs={"slug": grant.team.slug}),
                actions=self.actions,
            )

    def act(self, *, actor: Any, action: str, ids: list[str], reason: str) -> dict[str, Any]:
        grants = {str(g.pk): g for g in self.queryset(actor).filter(pk__in=_ids(ids))}
        return _act_each(ids, grants, lambda grant: grant_revoke(grant=grant, actor=actor, reason=reason))


def _denials(subjects: list[tuple[Any, Any, PolicyContext, list]]) -> dict[int, list[tuple[Any, Any]]]:
    """For (key, user, context, tools) rows: key -> [(tool, decision)] of the tools the user may not use."""
    denied: dict[Any, list[tuple[Any, Any]]] = defaultdict(list)
    for key, user, context, tools in subjects:
        if not tools:
            continue
        decisions = decide_many(user, tools, context)
        for tool in tools:
            if not decisions[tool.pk].allowed:
                denied[key].append((tool, decisions[tool.pk]))
    return denied


def _reasons(denied: list[tuple[Any, Any]]) -> list[Reason]:
    return [reason for _, decision in denied for reason in decision.reasons]


class WorkspaceProvider:
    kind = "workspace"
    label = "Workspace"
    actions = ("stop",)
    LIVE_EXCLUDED = (WorkspaceStatus.DELETED, WorkspaceStatus.DELETING)

    def queryset(self, user: Any):
        return (
            selectors.visible_workspaces(user)
            .exclude(status__in=self.LIVE_EXCLUDED)
            .filter(pk__in=selectors.visible_workspaces(user).filter(tools__isnull=False).values("pk"))
            .prefetch_related("tools")
            .order_by("owner__username", "name")
        )

    def _out_of_policy(self, workspaces) -> dict[Any, list[tuple[Any, Any]]]:
        rows = [
            (
                ws.pk,
                ws.owner,
                PolicyContext(classification=ws.classification, template=ws.template_version),
                list(ws.tools.all()),
            )
            for ws in workspaces
        ]
        return _denials(rows)

    def items(self, user: Any):
        workspaces = list(self.queryset(user))
        denied = self._out_of_policy(workspaces)
        stoppable = TRANSITIONS["stop"][0]
        for ws in workspaces:
            if ws.pk not in denied:
                continue
            yield OutOfPolicyItem(
                kind=self.kind,
                id=str(ws.pk),
                label=f"{ws.owner.username}/{ws.name} ({ws.get_status_display().lower()})",
                tool=", ".join(tool.slug for tool, _ in denied[ws.pk]),
                team=ws.team.slug,
                owner=ws.owner.username,
                reasons=_reasons(denied[ws.pk]),
                url=reverse("goldpath:workspace-detail", kwargs={"pk": ws.pk}),
                actions=self.actions if ws.status in stoppable else (),
            )

    def act(self, *, actor: Any, action: str, ids: list[str], reason: str) -> dict[str, Any]:
        wanted = [i for i in ids if _is_uuid(i)]
        workspaces = list(self.queryset(actor).filter(pk__in=wanted))
        denied = self._out_of_policy(workspaces)
        objects = {str(ws.pk): ws for ws in workspaces if ws.pk in denied}
        return _act_each(ids, objects, lambda ws: workspace_stop(workspace=ws, actor=actor))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


class AgentRunProvider:
    kind = "agent_run"
    label = "Agent run"
    actions = ("cancel",)

    def queryset(self, user: Any):
        return (
            selectors.visible_agent_runs(user)
            .filter(status__in=RUN_ACTIVE)
            .select_related("group__requester", "group__team", "tool")
            .order_by("group_id", "index")
        )

    def _out_of_policy(self, runs) -> dict[Any, list[tuple[Any, Any]]]:
        return _denials(
            [
                (run.pk, run.group.requester, PolicyContext(classification=run.group.classification), [run.tool])
                for run in runs
            ]
        )

    def items(self, user: Any):
        runs = list(self.queryset(user))
        denied = self._out_of_policy(runs)
        for run in runs:
            if run.pk not in denied:
                continue
            yield OutOfPolicyItem(
                kind=self.kind,
                id=str(run.pk),
                label=f"run #{run.index} of agent group {run.group_id} ({run.get_status_display().lower()})",
                tool=run.tool.slug,
                team=run.group.team.slug,
                owner=run.group.requester.username,
                reasons=_reasons(denied[run.pk]),
                url=reverse("goldpath:agent-group", kwargs={"pk": run.group_id}),
                actions=self.actions,
            )

    def act(self, *, actor: Any, action: str, ids: list[str], reason: str) -> dict[str, Any]:
        runs = list(self.queryset(actor).filter(pk__in=_ids(ids)))
        denied = self._out_of_policy(runs)
        objects = {str(run.pk): run for run in runs if run.pk in denied}
        canceled: set[int] = set()

        def cancel(run) -> None:
            # one cancel per group: its other selected runs are done with it
            if run.group_id in canceled:
                return
            run.group.refresh_from_db(fields=["status"])
            if run.group.status not in (AgentGroupStatus.FINISHED, AgentGroupStatus.CANCELED):
                agent_group_cancel(group=run.group, actor=actor)
            canceled.add(run.group_id)

        return _act_each(ids, objects, cancel)


BUILT_IN_PROVIDERS = (GrantProvider, WorkspaceProvider, AgentRunProvider)
_BUILT_IN = {provider_class.kind: provider_class() for provider_class in BUILT_IN_PROVIDERS}


def out_of_policy_providers() -> dict[str, OutOfPolicyProvider]:
    """Every provider by kind: the built-in ones, and those a host registered (which replace a built-in one)."""
    return {**_BUILT_IN, **registered_out_of_policy_providers()}


def out_of_policy_items(user: Any, kind: str | None = None) -> list[OutOfPolicyItem]:
    """Everything out of policy that `user` may read, by kind then as each provider orders it."""
    return [
        item
        for provider_kind, provider in sorted(out_of_policy_providers().items())
        if not kind or kind == provider_kind
        for item in provider.items(user)
    ]
