"""Build lifecycle as seen by workers: claim, log, heartbeat, finish, reap.

Only these functions change a build's status once it is queued (plus `build_cancel` for a pending one).
Each takes the build row under a lock and does nothing if the row is no longer in the state it expects,
so a redelivered task, a late worker or a reaper racing a finishing build never double-writes.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .. import audit
from ..conf import goldpath_settings
from ..models import BuildLogLine, BuildStatus, Transition, Workspace, WorkspaceBuild, WorkspaceStatus
from ..usage import record_usage

W = WorkspaceStatus
SUCCESS_STATUS = {Transition.START: W.RUNNING, Transition.STOP: W.STOPPED, Transition.DELETE: W.DELETED}


def hostname() -> str:
    return socket.gethostname()


def build_claim(build_id: int, *, task_id: str = "") -> WorkspaceBuild | None:
    """pending -> running under a row lock; None when the build is no longer pending (nothing to do)."""
    with transaction.atomic():
        build = WorkspaceBuild.objects.select_for_update().filter(pk=build_id).first()
        if build is None or build.status != BuildStatus.PENDING:
            return None
        ws = Workspace.objects.select_for_update().get(pk=build.workspace_id)
        now = timezone.now()
        build.status = BuildStatus.RUNNING
        build.started_at = now
        build.heartbeat_at = now
        build.worker_host = hostname()
        build.celery_task_id = task_id or build.celery_task_id
        build.stage = "claimed"
        build.save(update_fields=["status", "started_at", "heartbeat_at", "worker_host", "celery_task_id", "stage"])
        during = {Transition.START: W.STARTING, Transition.STOP: W.STOPPING, Transition.DELETE: W.DELETING}
        ws.status = during[build.transition]
        ws.save(update_fields=["status", "updated_at"])
        audit.record(
            actor=None,
            verb="build.started",
            target=build,
            payload={"workspace": str(ws.pk), "transition": build.transition, "host": build.worker_host},
        )
    return build


def build_log(build_id: int, lines: list[tuple[str, str, str]]) -> int:
    """Append (stage, level, text) lines in order; returns the last sequence number."""
    if not lines:
        return 0
    with transaction.atomic():
        build = WorkspaceBuild.objects.select_for_update().only("pk", "log_count").get(pk=build_id)
        start = build.log_count
        BuildLogLine.objects.bulk_create(
            [
                BuildLogLine(build_id=build_id, seq=start + i + 1, stage=s[:20], level=lv[:10], text=t)
                for i, (s, lv, t) in enumerate(lines)
            ]
        )
        WorkspaceBuild.objects.filter(pk=build_id).update(log_count=F("log_count") + len(lines))
    return start + len(lines)


def build_heartbeat(build_id: int, *, progress: float | None = None, stage: str | None = None, pgid=None) -> bool:
    """Mark the build alive; returns True when a cancel was requested (or the build is no longer ours)."""
    fields: dict[str, Any] = {"heartbeat_at": timezone.now()}
    if progress is not None:
        fields["progress"] = max(0.0, min(1.0, float(progress)))
    if stage:
        fields["stage"] = stage[:20]
    if pgid is not None:
        fields["pgid"] = pgid
    updated = WorkspaceBuild.objects.filter(pk=build_id, status=BuildStatus.RUNNING).update(**fields)
    if not updated:
        return True
    return WorkspaceBuild.objects.filter(pk=build_id, cancel_requested=True).exists()


def build_finish(
    build_id: int, *, status: str, error: str = "", outputs: dict[str, Any] | None = None, unchanged: bool = False
) -> WorkspaceBuild | None:
    """running -> succeeded/failed/canceled; does nothing if the build is no longer running (reaped).

    `unchanged`: the build ended before Terraform changed anything (refused by the portal, `init` failed): the
    workspace keeps the status it had (a running session still runs, so it is not called failed)."""
    with transaction.atomic():
        build = WorkspaceBuild.objects.select_for_update().filter(pk=build_id).first()
        if build is None or build.status != BuildStatus.RUNNING:
            return None
        ws = Workspace.objects.select_for_update().get(pk=build.workspace_id)
        now = timezone.now()
        build.status = status
        build.finished_at = now
        build.error = error[:20000]
        build.pgid = None
        if status == BuildStatus.SUCCEEDED:
            build.progress = 1.0
        if outputs is not None:
            build.outputs = outputs
        build.save(update_fields=["status", "finished_at", "error", "pgid", "progress", "outputs"])
        if status == BuildStatus.SUCCEEDED:
            ws.status = SUCCESS_STATUS[build.transition]
            if outputs is not None:
                ws.outputs = outputs if build.transition != Transition.DELETE else {}
        elif unchanged and build.prior_status in (W.RUNNING, W.STOPPED, W.FAILED):
            ws.status = build.prior_status
        else:
            ws.status = W.FAILED
        ws.last_activity_at = now
        ws.save(update_fields=["status", "outputs", "last_activity_at", "updated_at"])
        audit.record(
            actor=None,
            verb=f"build.{status}",
            target=build,
            payload={
                "workspace": str(ws.pk),
                "transition": build.transition,
                "error": error[:1000],
                "workspace_status": ws.status,
            },
        )
        if status in (BuildStatus.SUCCEEDED, BuildStatus.FAILED):
            record_usage(
                f"build_{status}",
                user=ws.owner,
                team=ws.team,
                template=ws.template,
                outcome=build.transition,
                duration_s=build.duration_s,
                key=f"build:{build.pk}:{status}",
            )
    return build


def _kill_group(pgid: int | None) -> bool:
    if not pgid or pgid <= 1 or pgid == os.getpgid(0):
        return False
    try:
        os.killpg(pgid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def builds_reap(*, timeout_s: float | None = None, now: dt.datetime | None = None) -> list[int]:
    """Fail running builds whose heartbeat is older than the bound, release their workspaces, and kill
    leftover terraform process groups of those builds on this host. Returns the reaped build ids."""
    bound = float(timeout_s if timeout_s is not None else goldpath_settings.BUILD_HEARTBEAT_TIMEOUT_S)
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=bound)
    reaped: list[int] = []
    candidates = list(
        WorkspaceBuild.objects.filter(status=BuildStatus.RUNNING, heartbeat_at__lt=cutoff).values_list("pk", flat=True)
    )
    me = hostname()
    for build_id in candidates:
        with transaction.atomic():
            build = WorkspaceBuild.objects.select_for_update().filter(pk=build_id).first()
            if build is None or build.status != BuildStatus.RUNNING or build.heartbeat_at >= cutoff:
                continue
            ws = Workspace.objects.select_for_update().get(pk=build.workspace_id)
            killed = _kill_group(build.pgid) if build.worker_host == me else False
            silent = (now - build.heartbeat_at).total_seconds()
            build.status = BuildStatus.FAILED
            build.finished_at = now
            build.error = (
                f"The worker running this build stopped responding (no heartbeat for {silent:.0f} s; "
                f"bound {bound:.0f} s) and the build was failed by the reaper. "
                "The workspace is released: start or delete it again."
            )
            build.pgid = None
            build.save(update_fields=["status", "finished_at", "error", "pgid"])
            ws.status = W.FAILED
            ws.save(update_fields=["status", "updated_at"])
            seq = build.log_count + 1
            BuildLogLine.objects.create(build=build, seq=seq, stage="reaper", level="error", text=build.error)
            WorkspaceBuild.objects.filter(pk=build.pk).update(log_count=seq)
            audit.record(
                actor=None,
                verb="build.reaped",
                target=build,
                payload={"workspace": str(ws.pk), "host": build.worker_host, "killed_process_group": killed},
            )
            record_usage(
                "build_failed",
                user=ws.owner,
                team=ws.team,
                template=ws.template,
                outcome=build.transition,
                duration_s=build.duration_s,
                key=f"build:{build.pk}:failed",
            )
            reaped.append(build.pk)
    return reaped
