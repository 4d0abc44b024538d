"""Agents that hand over: agent groups that start from a workspace's checkout, and runs applied back into it.

Only the workspace's owner does either (someone who cannot see the workspace gets 404, someone who can but is
not its owner 403); the workspace is running or stopped and keeps a checkout on the worker (local-sandbox),
else 409. Provenance of an apply: the AgentApply row and the audit events `agent_group.apply_requested` then
`agent_group.applied` (or `.apply_conflicted` / `.apply_failed`) naming the run, the workspace and the sha256 of
the diff applied; the group's `agent_group.workspace_snapshotted` event names the snapshot's sha256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import audit, selectors
from ..agents.workspace_tree import checkout_path, has_checkout
from ..models import AgentGroup, AgentRun, AgentRunStatus, Workspace, WorkspaceStatus
from ..models.agents import AgentApply, ApplyStatus
from .errors import InvalidInput, NotFound, NotPermitted, TransitionNotAllowed

USABLE = (WorkspaceStatus.RUNNING, WorkspaceStatus.STOPPED)
STALE_APPLY_S = 600


def has_local_checkout(workspace: Workspace) -> bool:
    """The template keeps the checkout on the worker, where Goldpath puts it (local-sandbox's `path` output)."""
    return str((workspace.outputs or {}).get("path") or "") == str(checkout_path(workspace.pk).parent)


def can_run_agents_here(user: Any, workspace: Workspace) -> bool:
    """What the workspace page offers: the owner, a running or stopped workspace with a checkout Goldpath reads
    (the same conditions agent_group_create checks, without raising)."""
    return workspace.owner_id == getattr(user, "pk", None) and workspace.status in USABLE and has_local_checkout(workspace)


def check_workspace_usable(workspace: Workspace) -> None:
    """409 unless the workspace is running or stopped with a checkout present."""
    if workspace.status not in USABLE:
        raise TransitionNotAllowed(
            f"The workspace is {workspace.status}; agents hand over only to a running or stopped workspace."
        )
    if not has_local_checkout(workspace):
        raise TransitionNotAllowed(
            f"Template {workspace.template.slug} keeps no checkout Goldpath can read (only local-sandbox workspaces "
            "have one); launch the agents on the repository instead."
        )
    if not has_checkout(checkout_path(workspace.pk)):
        raise TransitionNotAllowed("The workspace's checkout is missing; start the workspace again.")


def owned_workspace(*, actor: Any, workspace_id: Any, field: str = "workspace") -> Workspace:
    """The workspace, if the actor owns it: 404 when they cannot see it, 403 when they can but do not own it."""
    try:
        pk = uuid.UUID(str(workspace_id))
    except ValueError:
        raise InvalidInput("Give a workspace id.", errors={field: ["Give a workspace id (a UUID)."]}) from None
    ws = selectors.visible_workspaces(actor).exclude(status=WorkspaceStatus.DELETED).filter(pk=pk).first()
    if ws is None:
        raise NotFound("No such workspace.")
    if ws.owner_id != getattr(actor, "pk", None):
        raise NotPermitted("Only the workspace's owner may hand work to and from its agents.")
    return ws


def snapshot_sha256(diff: str) -> str:
    return hashlib.sha256(diff.encode()).hexdigest()


@transaction.atomic
def agent_group_snapshot_taken(*, group_id: int, base_commit: str, snapshot: str, files: list[str]) -> bool:
    """Keep the group's snapshot (the first run to take it wins; the others use it). True if this one was kept."""
    digest = snapshot_sha256(snapshot)
    kept = AgentGroup.objects.filter(pk=group_id, workspace_snapshot_sha256="").update(
        base_commit=base_commit, workspace_snapshot=snapshot, workspace_snapshot_sha256=digest
    )
    if kept:
        group = AgentGroup.objects.get(pk=group_id)
        audit.record(
            actor=None,
            verb="agent_group.workspace_snapshotted",
            target=group,
            payload={
                "workspace": str(group.workspace_id),
                "base_commit": base_commit,
                "snapshot_sha256": digest,
                "files": files[:200],
            },
        )
    return bool(kept)


@transaction.atomic
def agent_group_apply(*, group: AgentGroup, actor: Any, run: AgentRun) -> AgentApply:
    """Ask a worker to apply a succeeded run's diff into the group's workspace (see catalog.agents.workspace_apply)."""
    group = AgentGroup.objects.select_for_update().get(pk=group.pk)
    if group.requester_id != getattr(actor, "pk", None):  # a group from a workspace is its owner's
        raise NotPermitted("Only the workspace's owner, who launched the group, may apply its results.")
    if group.workspace_id is None:
        raise TransitionNotAllowed("This group did not start from a workspace; accept its result as a commit instead.")
    workspace = owned_workspace(actor=actor, workspace_id=group.workspace_id)
    run = AgentRun.objects.filter(pk=run.pk, group=group).first()
    if run is None:
        raise InvalidInput("No such run in this group.", errors={"run": ["Choose a run of this group."]})
    if run.status != AgentRunStatus.SUCCEEDED:
        raise TransitionNotAllowed(f"Only a succeeded run can be applied; run {run.pk} is {run.status}.")
    if not run.diff.strip():
        raise TransitionNotAllowed(f"Run {run.pk} changed nothing; there is nothing to apply.")
    check_workspace_usable(workspace)
    # an apply whose worker died (or whose message was lost) no longer blocks the workspace
    stale = timezone.now() - dt.timedelta(seconds=STALE_APPLY_S)
    AgentApply.objects.filter(workspace=workspace, status=ApplyStatus.PENDING, created_at__lt=stale).update(
        status=ApplyStatus.FAILED,
        error="No worker finished this apply; nothing was changed by it.",
        finished_at=timezone.now(),
    )
    if AgentApply.objects.filter(workspace=workspace, status=ApplyStatus.PENDING).exists():
        raise TransitionNotAllowed("Another result is being applied into this workspace; try again when it is done.")
    row = AgentApply.objects.create(
        group=group,
        run=run,
        workspace=workspace,
        requested_by=actor,
        diff_sha256=hashlib.sha256(run.diff.encode()).hexdigest(),
    )
    audit.record(
        actor=actor,
        verb="agent_group.apply_requested",
        target=group,
        payload={"apply": row.pk, "run": run.pk, "workspace": str(workspace.pk), "diff_sha256": row.diff_sha256},
    )
    from ..tasks.agents import apply_into_workspace  # this service's own task (it calls agent_group_apply_done)

    apply_id = row.pk
    transaction.on_commit(lambda: apply_into_workspace.delay(apply_id))
    return row


@transaction.atomic
def agent_group_apply_done(
    *, apply_id: int, status: str, files: list[str], conflicts: list[str], error: str = ""
) -> AgentApply:
    row = AgentApply.objects.select_for_update().select_related("group").get(pk=apply_id)
    row.status = status
    row.files = files[:1000]
    row.conflicts = conflicts[:1000]
    row.error = error[:4000]
    row.finished_at = timezone.now()
    row.save(update_fields=["status", "files", "conflicts", "error", "finished_at"])
    verb = {
        ApplyStatus.APPLIED: "agent_group.applied",
        ApplyStatus.CONFLICT: "agent_group.apply_conflicted",
    }.get(status, "agent_group.apply_failed")
    audit.record(
        actor=row.requested_by,
        verb=verb,
        target=row.group,
        payload={
            "apply": row.pk,
            "run": row.run_id,
            "workspace": str(row.workspace_id),
            "diff_sha256": row.diff_sha256,
            "files": row.files[:200],
            "conflicts": row.conflicts[:200],
            "error": row.error[:500],
        },
    )
    return row
