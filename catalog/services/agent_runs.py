"""Agent run lifecycle on the worker's side: claim, running, heartbeat, logs, finish, the agent's reports, the reaper.

Only these functions change a run's status once it is launched (catalog.services.agent_groups creates runs and
cancels pending ones). Every change is atomic and audited; a run that is already final is left alone, so a
task delivered twice does nothing the second time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .. import audit
from ..agents.identity import token_revoke
from ..agents.workdirs import cleanup_after_worker_loss
from ..conf import goldpath_settings
from ..gateway.metering import finalize_run_usage
from ..models import (
    RUN_ACTIVE,
    RUN_FINAL,
    RUN_IN_FLIGHT,
    AgentGroup,
    AgentGroupStatus,
    AgentRun,
    AgentRunLogLine,
    AgentRunStatus,
    Team,
)
from ..usage import record_usage
from .errors import QuotaExceeded, TransitionNotAllowed


def agent_runs_send(run_ids: list[int]) -> None:
    """One broker connection for the whole fan-out (a connection per message costs ~5 ms on Redis)."""
    from ..tasks.agents import run_agent  # this service's own task (it calls back into agent_run_claim)

    with run_agent.app.producer_or_acquire() as producer:
        for pk in run_ids:
            run_agent.apply_async((pk,), producer=producer)


# --- the worker's side of a run ---------------------------------------------------------------


@transaction.atomic
def agent_run_claim(*, run_id: int, worker: str, task_id: str = "") -> AgentRun | None:
    """Claim a pending run for this worker (None if it is no longer claimable).

    Raises QuotaExceeded when the team already has AGENT_TEAM_CONCURRENCY runs in flight (the task retries).
    """
    run = AgentRun.objects.select_for_update().select_related("group").filter(pk=run_id).first()
    if run is None or run.status != AgentRunStatus.PENDING:
        return None
    group = AgentGroup.objects.select_for_update().get(pk=run.group_id)
    if group.status == AgentGroupStatus.CANCELED:
        return None
    Team.objects.select_for_update().filter(pk=group.team_id).first()  # serialises the team's claims
    in_flight = AgentRun.objects.filter(group__team_id=group.team_id, status__in=RUN_IN_FLIGHT).count()
    if in_flight >= int(goldpath_settings.AGENT_TEAM_CONCURRENCY):
        raise QuotaExceeded(f"team {group.team_id} has {in_flight} agent runs in flight")
    now = timezone.now()
    run.status = AgentRunStatus.STARTING
    run.worker = worker[:200]
    run.task_id = task_id[:64]
    run.started_at = now
    run.heartbeat_at = now
    run.save(update_fields=["status", "worker", "task_id", "started_at", "heartbeat_at"])
    if group.status == AgentGroupStatus.PENDING:
        group.status = AgentGroupStatus.RUNNING
        group.save(update_fields=["status"])
    audit.record(actor=run.principal, verb="agent_run.started", target=run, payload={"worker": run.worker})
    record_usage(
        "agent_run_started",
        user=group.requester,
        team=group.team_id and group.team,
        tool=run.tool,
        key=f"agent_run:{run.pk}:started",
    )
    return run


def agent_run_running(*, run: AgentRun, sandbox: dict[str, Any], workdir: str, sandbox_pid: int | None) -> bool:
    """Starting -> running once the sandbox process exists. False if the run was canceled or reaped meanwhile."""
    now = timezone.now()
    changed = AgentRun.objects.filter(pk=run.pk, status=AgentRunStatus.STARTING).update(
        status=AgentRunStatus.RUNNING, sandbox=sandbox, workdir=workdir, sandbox_pid=sandbox_pid, heartbeat_at=now
    )
    return bool(changed)


def agent_run_heartbeat(*, run_id: int) -> bool:
    """Touch the heartbeat; answers whether a cancel was asked (or the run was ended by someone else)."""
    AgentRun.objects.filter(pk=run_id, status__in=RUN_IN_FLIGHT).update(heartbeat_at=timezone.now())
    row = AgentRun.objects.filter(pk=run_id).values("status", "cancel_requested").first()
    return row is None or row["cancel_requested"] or row["status"] not in RUN_IN_FLIGHT


def agent_run_log(*, run_id: int, lines: list[tuple[str, str]]) -> int:
    """Append log lines (stream, text) with increasing seq; the last seq is kept on the run row."""
    if not lines:
        return 0
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().only("pk", "log_seq").get(pk=run_id)
        cap = int(goldpath_settings.AGENT_LOG_LINES_MAX)
        start = run.log_seq
        room = max(0, cap - start)
        keep = lines[:room]
        if len(lines) > room and start < cap + 1:
            keep.append(("system", f"[log truncated at {cap} lines]"))
        AgentRunLogLine.objects.bulk_create(
            [
                AgentRunLogLine(run_id=run_id, seq=start + i + 1, stream=s, text=t[:4000])
                for i, (s, t) in enumerate(keep)
            ]
        )
        AgentRun.objects.filter(pk=run_id).update(log_seq=start + len(keep))
    return len(keep)


@transaction.atomic
def agent_run_finish(
    *,
    run_id: int,
    status: str,
    exit_code: int | None = None,
    error: str = "",
    diff: str | None = None,
    diff_stat: dict | None = None,
    test_exit_code: int | None = None,
    test_output: str = "",
    sandbox: dict | None = None,
    actor: Any = None,
    reported_usage: dict | None = None,
) -> AgentRun | None:
    """End a run (idempotent: a run already final is left alone); revoke its identity and gateway credential;
    sum its metered model calls onto it; finish the group."""
    assert status in RUN_FINAL, status
    run = AgentRun.objects.select_for_update().select_related("group", "tool").filter(pk=run_id).first()
    if run is None or run.status in RUN_FINAL:
        return None
    run.status = status
    run.finished_at = timezone.now()
    run.exit_code = exit_code
    run.error = (error or "")[:4000]
    if diff is not None:
        run.diff = diff
    if diff_stat is not None:
        run.diff_stat = diff_stat
    run.test_exit_code = test_exit_code
    run.test_output = (test_output or "")[-20000:]
    if sandbox:
        run.sandbox = {**run.sandbox, **sandbox}
    if reported_usage is not None:
        run.reported_usage = reported_usage
    run.save()
    token_revoke(run)
    finalize_run_usage(run.pk)
    run.refresh_from_db(fields=["model_calls", "input_tokens", "output_tokens", "cost_usd", "transcript_sha256"])
    audit.record(
        actor=actor or run.principal,
        verb="agent_run.finished",
        target=run,
        payload={
            "status": status,
            "exit_code": exit_code,
            "error": run.error[:500],
            "test_exit_code": test_exit_code,
            "policy_hash": run.sandbox.get("policy_hash", ""),
            "egress_denied": sorted(
                {f"{e.get('host')}:{e.get('port')}" for e in run.sandbox.get("egress", []) if not e.get("allowed")}
            ),
            "model_calls": run.model_calls,
            "input_tokens": run.input_tokens,
            "output_tokens": run.output_tokens,
            "cost_usd": str(run.cost_usd),
            "transcript_sha256": run.transcript_sha256,
        },
    )
    group = run.group
    record_usage(
        "agent_run_finished",
        user=group.requester,
        team=group.team,
        tool=run.tool,
        tool_version=run.tool_version,
        duration_s=run.duration_s,
        outcome=status,
        key=f"agent_run:{run.pk}:finished",
    )
    _maybe_finish_group(group.pk)
    return run


def _maybe_finish_group(group_id: int) -> None:
    group = AgentGroup.objects.select_for_update().get(pk=group_id)
    if group.status in (AgentGroupStatus.FINISHED, AgentGroupStatus.CANCELED):
        return
    if group.runs.filter(status__in=RUN_ACTIVE).exists():
        return
    group.status = AgentGroupStatus.FINISHED
    group.finished_at = timezone.now()
    group.save(update_fields=["status", "finished_at"])
    counts = {s: group.runs.filter(status=s).count() for s in RUN_FINAL}
    audit.record(actor=None, verb="agent_group.finished", target=group, payload={"runs": counts})


# --- agent identity endpoints -------------------------------------------------------------------


def agent_run_report(*, run: AgentRun, progress: str = "", result: dict | None = None) -> AgentRun:
    """The run's own agent reports progress or attaches results (only while the run is in flight)."""
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().get(pk=run.pk)
        if run.status not in RUN_IN_FLIGHT:
            raise TransitionNotAllowed(f"The run is {run.status}; it no longer accepts reports.")
        fields = []
        if progress:
            run.progress = progress[:500]
            fields.append("progress")
        if result is not None:
            run.result = {**run.result, **result}
            fields.append("result")
        if fields:
            run.save(update_fields=fields)
        audit.record(
            actor=run.principal,
            verb="agent_run.reported",
            target=run,
            payload={"progress": progress[:200], "result_keys": sorted((result or {}).keys())},
        )
    if progress:
        agent_run_log(run_id=run.pk, lines=[("agent", f"progress: {progress[:500]}")])
    return run


# --- reaper -----------------------------------------------------------------------------------


def agent_runs_reap(*, now: dt.datetime | None = None, bound_s: int | None = None) -> dict[str, list[int]]:
    """Fail in-flight runs whose worker stopped heartbeating; clean their copy; re-send lost pending runs."""
    now = now or timezone.now()
    bound = int(bound_s if bound_s is not None else goldpath_settings.AGENT_REAPER_BOUND_S)
    stale = AgentRun.objects.filter(status__in=RUN_IN_FLIGHT).filter(
        Q(heartbeat_at__lt=now - dt.timedelta(seconds=bound)) | Q(heartbeat_at__isnull=True)
    )
    failed: list[int] = []
    for pk in stale.values_list("pk", flat=True):
        run = AgentRun.objects.filter(pk=pk).first()
        if run is None:
            continue
        cleanup_after_worker_loss(run)
        done = agent_run_finish(
            run_id=pk,
            status=AgentRunStatus.FAILED,
            error=f"The worker {run.worker or '?'} stopped (no heartbeat for {bound} s); the run was failed by the reaper.",
            actor=None,
        )
        if done is not None:
            failed.append(pk)
    # pending runs whose message was lost (embedded brokers lose tasks when a worker dies): send them again
    resent: list[int] = []
    lost = AgentRun.objects.filter(
        status=AgentRunStatus.PENDING,
        group__status__in=(AgentGroupStatus.PENDING, AgentGroupStatus.RUNNING),
        created_at__lt=now - dt.timedelta(seconds=max(bound * 10, 300)),
    )
    resent = list(lost.values_list("pk", flat=True)[:500])
    if resent:
        agent_runs_send(resent)
    return {"failed": failed, "resent": resent}
