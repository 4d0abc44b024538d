"""Agent tasks (queue `agents`): running agents, and the work around their runs and results.

Run one agent, send a group's runs, accept a result, apply one into a workspace, reap.

Tasks take ids, claim their row under a lock and do nothing if it is no longer claimable; the policy is
decided again inside the task, right before the sandbox starts. Each task calls one service (or the worker code
that calls it): catalog.services.agent_runs, agent_groups and agent_workspace enqueue these tasks on commit.
"""

from __future__ import annotations

import os
import random

from celery import shared_task
from django.contrib.auth import get_user_model

from ..agents.execution import execute_run
from ..agents.workspace_apply import apply_run
from ..models import AcceptStatus, AgentGroup, AgentRun, AgentRunStatus
from ..services.agent_groups import agent_group_accept_commit
from ..services.agent_runs import agent_run_claim, agent_runs_reap, agent_runs_send
from ..services.errors import QuotaExceeded


@shared_task(bind=True, name="catalog.tasks.agents.run_agent", queue="agents", max_retries=None, acks_late=True)
def run_agent(self, run_id: int) -> dict:
    worker = f"{self.request.hostname or 'worker'}:{os.getpid()}"
    try:
        run = agent_run_claim(run_id=run_id, worker=worker, task_id=self.request.id or "")
    except QuotaExceeded:
        # the team's concurrency cap is reached: try again shortly (the row stays pending)
        raise self.retry(countdown=0.5 + random.random(), max_retries=None) from None
    if run is None:
        return {"run": run_id, "claimed": False}
    status = execute_run(run.pk)
    return {"run": run_id, "claimed": True, "status": status}


@shared_task(name="catalog.tasks.agents.dispatch_group", queue="agents")
def dispatch_group(group_id: int) -> dict:
    """Send one run_agent message per pending run of the group (idempotent: run_agent claims or skips)."""
    ids = list(
        AgentRun.objects.filter(group_id=group_id, status=AgentRunStatus.PENDING)
        .order_by("index")
        .values_list("pk", flat=True)
    )
    agent_runs_send(ids)
    return {"group": group_id, "sent": len(ids)}


@shared_task(name="catalog.tasks.agents.accept_run", queue="agents")
def accept_run(group_id: int, actor_id: int | None = None) -> dict:
    """Commit an accepted run for a remote repository (push the new branch) and sign its provenance."""
    group = AgentGroup.objects.filter(pk=group_id, accept_status=AcceptStatus.PENDING).first()
    if group is None:
        return {"group": group_id, "done": False}
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    record = agent_group_accept_commit(group_id=group_id, actor=actor)
    return {"group": group_id, "done": record is not None}


@shared_task(name="catalog.tasks.agents.apply_into_workspace", queue="agents")
def apply_into_workspace(apply_id: int) -> dict:
    """Apply a run's diff into its group's workspace (catalog.agents.workspace_apply)."""
    return {"apply": apply_id, "status": apply_run(apply_id)}


@shared_task(name="catalog.tasks.agents.reap", queue="default")
def reap() -> dict:
    """Periodic: fail runs whose worker died (no heartbeat within the bound); re-send lost pending runs."""
    return agent_runs_reap()
