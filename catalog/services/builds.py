"""Build lifecycle as seen by workers: claim, log, heartbeat, finish, reap (catalog.jobs.lifecycle steps).

Only these functions change a build's status once it is queued (plus `build_cancel` for a pending one).
`BuildKind` holds what is specific to builds: a claim moves the workspace to starting/stopping/deleting, a
finish moves it to its outcome, and the reaper kills the lost terraform's process group and logs why.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
from typing import Any

from .. import audit
from ..conf import goldpath_settings
from ..jobs import lifecycle
from ..models import BuildLogLine, BuildStatus, Transition, Workspace, WorkspaceBuild, WorkspaceStatus
from ..usage import record_usage

W = WorkspaceStatus
SUCCESS_STATUS = {Transition.START: W.RUNNING, Transition.STOP: W.STOPPED, Transition.DELETE: W.DELETED}
DURING_STATUS = {Transition.START: W.STARTING, Transition.STOP: W.STOPPING, Transition.DELETE: W.DELETING}


def hostname() -> str:
    return socket.gethostname()


def _kill_group(pgid: int | None) -> bool:
    if not pgid or pgid <= 1 or pgid == os.getpgid(0):
        return False
    try:
        os.killpg(pgid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _usage_failed_or_succeeded(build: WorkspaceBuild, ws: Workspace, status: str) -> None:
    record_usage(
        f"build_{status}",
        user=ws.owner,
        team=ws.team,
        template=ws.template,
        outcome=build.transition,
        duration_s=build.duration_s,
        key=f"build:{build.pk}:{status}",
    )


class BuildKind(lifecycle.JobKind):
    model = WorkspaceBuild
    log_model = BuildLogLine
    log_fk = "build_id"
    claimed = BuildStatus.RUNNING
    failed = BuildStatus.FAILED
    in_flight = (BuildStatus.RUNNING,)
    finishable = (BuildStatus.RUNNING,)
    error_max = 20000

    def claim_check(self, job: WorkspaceBuild) -> bool:
        job._ws = Workspace.objects.select_for_update().get(pk=job.workspace_id)
        return True

    def claimed_fields(self, job: WorkspaceBuild) -> list[str]:
        job.stage = "claimed"
        return ["stage"]

    def on_claimed(self, job: WorkspaceBuild) -> None:
        ws = job._ws
        ws.status = DURING_STATUS[job.transition]
        ws.save(update_fields=["status", "updated_at"])
        audit.record(
            actor=None,
            verb="build.started",
            target=job,
            payload={"workspace": str(ws.pk), "transition": job.transition, "host": job.worker},
        )

    def finishing(
        self, job: WorkspaceBuild, *, outputs: dict | None = None, unchanged: bool = False, reaped: bool = False
    ) -> list[str]:
        job._ws = Workspace.objects.select_for_update().get(pk=job.workspace_id)
        if reaped:
            job._killed = _kill_group(job.pgid) if job.worker == hostname() else False
            job.pgid = None
            return ["pgid"]
        job.pgid = None
        if job.status == BuildStatus.SUCCEEDED:
            job.progress = 1.0
        if outputs is not None:
            job.outputs = outputs
        return ["pgid", "progress", "outputs"]

    def on_finished(
        self, job: WorkspaceBuild, *, outputs: dict | None = None, unchanged: bool = False, reaped: bool = False
    ) -> None:
        ws = job._ws
        if reaped:
            ws.status = W.FAILED
            ws.save(update_fields=["status", "updated_at"])
            lifecycle.job_log(self, job.pk, [{"stage": "reaper", "level": "error", "text": job.error}])
            audit.record(
                actor=None,
                verb="build.reaped",
                target=job,
                payload={"workspace": str(ws.pk), "host": job.worker, "killed_process_group": job._killed},
            )
            _usage_failed_or_succeeded(job, ws, BuildStatus.FAILED)
            return
        if job.status == BuildStatus.SUCCEEDED:
            ws.status = SUCCESS_STATUS[job.transition]
            if outputs is not None:
                ws.outputs = outputs if job.transition != Transition.DELETE else {}
        elif unchanged and job.prior_status in (W.RUNNING, W.STOPPED, W.FAILED):
            ws.status = job.prior_status
        else:
            ws.status = W.FAILED
        ws.last_activity_at = job.finished_at
        ws.save(update_fields=["status", "outputs", "last_activity_at", "updated_at"])
        audit.record(
            actor=None,
            verb=f"build.{job.status}",
            target=job,
            payload={
                "workspace": str(ws.pk),
                "transition": job.transition,
                "error": job.error[:1000],
                "workspace_status": ws.status,
            },
        )
        if job.status in (BuildStatus.SUCCEEDED, BuildStatus.FAILED):
            _usage_failed_or_succeeded(job, ws, job.status)

    def reap_error(self, job: WorkspaceBuild, *, now: dt.datetime, bound: float) -> str:
        silent = (now - job.heartbeat_at).total_seconds() if job.heartbeat_at else bound
        return (
            f"The worker running this build stopped responding (no heartbeat for {silent:.0f} s; "
            f"bound {bound:.0f} s) and the build was failed by the reaper. "
            "The workspace is released: start or delete it again."
        )

    def reap_finished_at(self, now: dt.datetime) -> dt.datetime | None:
        return now


BUILDS = BuildKind()


def build_claim(build_id: int, *, task_id: str = "") -> WorkspaceBuild | None:
    """pending -> running under a row lock; None when the build is no longer pending (nothing to do)."""
    return lifecycle.job_claim(BUILDS, build_id, worker=hostname(), task_id=task_id)


def build_log(build_id: int, lines: list[tuple[str, str, str]]) -> int:
    """Append (stage, level, text) lines in order; returns the last sequence number."""
    if not lines:
        return 0
    rows = [{"stage": s[:20], "level": lv[:10], "text": t} for s, lv, t in lines]
    start, written = lifecycle.job_log(BUILDS, build_id, rows)
    return start + written


def build_heartbeat(build_id: int, *, progress: float | None = None, stage: str | None = None, pgid=None) -> bool:
    """Mark the build alive; returns True when a cancel was requested (or the build is no longer ours)."""
    fields: dict[str, Any] = {}
    if progress is not None:
        fields["progress"] = max(0.0, min(1.0, float(progress)))
    if stage:
        fields["stage"] = stage[:20]
    return lifecycle.job_heartbeat(BUILDS, build_id, pgid=pgid, fields=fields)


def build_finish(
    build_id: int, *, status: str, error: str = "", outputs: dict[str, Any] | None = None, unchanged: bool = False
) -> WorkspaceBuild | None:
    """running -> succeeded/failed/canceled; does nothing if the build is no longer running (reaped).

    `unchanged`: the build ended before Terraform changed anything (refused by the portal, `init` failed): the
    workspace keeps the status it had (a running session still runs, so it is not called failed)."""
    return lifecycle.job_finish(BUILDS, build_id, status=status, error=error, outputs=outputs, unchanged=unchanged)


def builds_reap(*, timeout_s: float | None = None, now: dt.datetime | None = None) -> list[int]:
    """Fail running builds whose heartbeat is older than the bound, release their workspaces, and kill
    leftover terraform process groups of those builds on this host. Returns the reaped build ids."""
    bound = float(timeout_s if timeout_s is not None else goldpath_settings.BUILD_HEARTBEAT_TIMEOUT_S)
    return lifecycle.job_reap(BUILDS, bound_s=bound, now=now)
