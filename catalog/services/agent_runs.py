"""Agent run lifecycle, worker side: claim, running, heartbeat, logs, finish, the agent's reports, the reaper.

Only these functions change a run's status once it is launched (catalog.services.agent_groups creates runs and
cancels pending ones). Every change is atomic and audited; a run that is already final is left alone, so a
task delivered twice does nothing the second time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import audit
from ..agents.identity import token_revoke
from ..agents.workdirs import cleanup_after_worker_loss
from ..conf import goldpath_settings
from ..gateway.metering import finalize_run_usage
from ..jobs import lifecycle
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


# --- the worker's side of a run (catalog.jobs.lifecycle steps) -----------------------------------


class RunKind(lifecycle.JobKind):
    """What is specific to runs: a claim respects the team's concurrency and starts the group; a finish revokes
    the run's credentials, sums its model calls and may finish the group; the reaper cleans the lost copy."""

    model = AgentRun
    log_model = AgentRunLogLine
    log_fk = "run_id"
    claimed = AgentRunStatus.STARTING
    failed = AgentRunStatus.FAILED
    in_flight = RUN_IN_FLIGHT
    finishable = RUN_ACTIVE
    error_max = 4000
    select_related = ("group",)

    @property
    def log_cap(self) -> int:
        return int(goldpath_settings.AGENT_LOG_LINES_MAX)

    def truncation_line(self, cap: int) -> dict[str, Any]:
        return {"stream": "system", "text": f"[log truncated at {cap} lines]"}

    def claim_check(self, job: AgentRun) -> bool:
        group = AgentGroup.objects.select_for_update().get(pk=job.group_id)
        if group.status == AgentGroupStatus.CANCELED:
            return False
        Team.objects.select_for_update().filter(pk=group.team_id).first()  # serialises the team's claims
        in_flight = AgentRun.objects.filter(group__team_id=group.team_id, status__in=RUN_IN_FLIGHT).count()
        if in_flight >= int(goldpath_settings.AGENT_TEAM_CONCURRENCY):
            raise QuotaExceeded(f"team {group.team_id} has {in_flight} agent runs in flight")
        job.group = group
        return True

    def on_claimed(self, job: AgentRun) -> None:
        group = job.group
        if group.status == AgentGroupStatus.PENDING:
            group.status = AgentGroupStatus.RUNNING
            group.save(update_fields=["status"])
        audit.record(actor=job.principal, verb="agent_run.started", target=job, payload={"worker": job.worker})
        record_usage(
            "agent_run_started",
            user=group.requester,
            team=group.team_id and group.team,
            tool=job.tool,
            key=f"agent_run:{job.pk}:started",
        )

    def finishing(
        self,
        job: AgentRun,
        *,
        exit_code: int | None = None,
        diff: str | None = None,
        diff_stat: dict | None = None,
        test_exit_code: int | None = None,
        test_output: str = "",
        sandbox: dict | None = None,
        reported_usage: dict | None = None,
        **_: Any,
    ) -> list[str]:
        job.exit_code = exit_code
        job.test_exit_code = test_exit_code
        job.test_output = (test_output or "")[-20000:]
        fields = ["exit_code", "test_exit_code", "test_output"]
        if diff is not None:
            job.diff = diff
            fields.append("diff")
        if diff_stat is not None:
            job.diff_stat = diff_stat
            fields.append("diff_stat")
        if sandbox:
            job.sandbox = {**job.sandbox, **sandbox}
            fields.append("sandbox")
        if reported_usage is not None:
            job.reported_usage = reported_usage
            fields.append("reported_usage")
        return fields

    def on_finished(self, job: AgentRun, *, actor: Any = None, **kw: Any) -> None:
        token_revoke(job)
        finalize_run_usage(job.pk)
        job.refresh_from_db(fields=["model_calls", "input_tokens", "output_tokens", "cost_usd", "transcript_sha256"])
        audit.record(
            actor=actor or job.principal,
            verb="agent_run.finished",
            target=job,
            payload={
                "status": job.status,
                "exit_code": job.exit_code,
                "error": job.error[:500],
                "test_exit_code": job.test_exit_code,
                "policy_hash": job.sandbox.get("policy_hash", ""),
                "egress_denied": sorted(
                    {f"{e.get('host')}:{e.get('port')}" for e in job.sandbox.get("egress", []) if not e.get("allowed")}
                ),
                "model_calls": job.model_calls,
                "input_tokens": job.input_tokens,
                "output_tokens": job.output_tokens,
                "cost_usd": str(job.cost_usd),
                "transcript_sha256": job.transcript_sha256,
            },
        )
        group = job.group
        record_usage(
            "agent_run_finished",
            user=group.requester,
            team=group.team,
            tool=job.tool,
            tool_version=job.tool_version,
            duration_s=job.duration_s,
            outcome=job.status,
            key=f"agent_run:{job.pk}:finished",
        )
        _maybe_finish_group(group.pk)

    def before_reap(self, job: AgentRun) -> None:
        cleanup_after_worker_loss(job)

    def reap_error(self, job: AgentRun, *, now: dt.datetime, bound: float) -> str:
        return f"The worker {job.worker or '?'} stopped (no heartbeat for {bound} s); the run was failed by the reaper."


RUNS = RunKind()


def agent_run_claim(*, run_id: int, worker: str, task_id: str = "") -> AgentRun | None:
    """Claim a pending run for this worker (None if it is no longer claimable).

    Raises QuotaExceeded when the team already has AGENT_TEAM_CONCURRENCY runs in flight (the task retries).
    """
    return lifecycle.job_claim(RUNS, run_id, worker=worker, task_id=task_id)


def agent_run_running(*, run: AgentRun, sandbox: dict[str, Any], workdir: str, pgid: int | None) -> bool:
    """Starting -> running once the sandbox process exists. False if the run was canceled or reaped meanwhile."""
    now = timezone.now()
    changed = AgentRun.objects.filter(pk=run.pk, status=AgentRunStatus.STARTING).update(
        status=AgentRunStatus.RUNNING, sandbox=sandbox, workdir=workdir, pgid=pgid, heartbeat_at=now
    )
    return bool(changed)


def agent_run_heartbeat(*, run_id: int) -> bool:
    """Touch the heartbeat; answers whether a cancel was asked (or the run was ended by someone else)."""
    return lifecycle.job_heartbeat(RUNS, run_id)


def agent_run_log(*, run_id: int, lines: list[tuple[str, str]]) -> int:
    """Append log lines (stream, text) with increasing seq; the last seq is kept on the run row."""
    if not lines:
        return 0
    _, written = lifecycle.job_log(RUNS, run_id, [{"stream": s, "text": t[:4000]} for s, t in lines])
    return written


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
    return lifecycle.job_finish(
        RUNS,
        run_id,
        status=status,
        error=error,
        exit_code=exit_code,
        diff=diff,
        diff_stat=diff_stat,
        test_exit_code=test_exit_code,
        test_output=test_output,
        sandbox=sandbox,
        actor=actor,
        reported_usage=reported_usage,
    )


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
    failed = lifecycle.job_reap(RUNS, bound_s=bound, now=now)
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
