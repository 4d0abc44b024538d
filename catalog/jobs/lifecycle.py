"""The worker-side steps of any job: claim, heartbeat, log, cancel request, finish, reap.

Each step takes the job row under a lock and does nothing when the row is no longer in the state it expects,
so a redelivered task, a late worker or a reaper racing a finishing job never double-writes (DESIGN.md
conventions 3 and 4). What a kind of job does besides (a build to its workspace, a run to its group) lives in
its `JobKind` hooks, which run inside the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .models import Job, JobLogLine


class JobKind:
    """One kind of job: its models, its statuses, and the hooks for what is specific to it."""

    model: type[Job]
    log_model: type[JobLogLine]
    log_fk: str  # the log line's column naming its job, e.g. "build_id"
    pending: str = "pending"
    claimed: str = "running"  # the status a claim moves the job to
    failed: str = "failed"
    in_flight: tuple[str, ...] = ("running",)  # heartbeats, cancel requests and the reaper apply to these
    finishable: tuple[str, ...] = ("running",)  # `finish` ends only these
    error_max: int = 20000
    select_related: tuple[str, ...] = ()

    @property
    def log_cap(self) -> int | None:
        """At most this many lines are kept (then one truncation line); None: no cap."""
        return None

    def truncation_line(self, cap: int) -> dict[str, Any]:
        raise NotImplementedError

    def claim_check(self, job: Job) -> bool:
        """Inside the claim's lock: lock related rows; False leaves the job pending (it may also raise)."""
        return True

    def claimed_fields(self, job: Job) -> list[str]:
        """Set the kind's own fields on a job being claimed; returns their names."""
        return []

    def on_claimed(self, job: Job) -> None:
        """After the claimed job is saved, in the same transaction (related rows, audit, usage)."""

    def finishing(self, job: Job, **kw: Any) -> list[str]:
        """Set the kind's own fields on a job being finished; returns their names."""
        return []

    def on_finished(self, job: Job, **kw: Any) -> None:
        """After the finished job is saved, in the same transaction."""

    def before_reap(self, job: Job) -> None:
        """Outside any lock, before a silent job is failed: clean up after its lost worker."""

    def reap_error(self, job: Job, *, now: dt.datetime, bound: float) -> str:
        raise NotImplementedError

    def reap_finished_at(self, now: dt.datetime) -> dt.datetime | None:
        """The reaped job's finished_at (None: the moment it is reaped)."""
        return None

    # --- helpers -------------------------------------------------------------------------------

    def locked(self, pk: int) -> Job | None:
        qs = self.model.objects.select_for_update()
        if self.select_related:
            qs = qs.select_related(*self.select_related)
        return qs.filter(pk=pk).first()


def _fit(model: type[Job], field: str, value: str) -> str:
    return value[: model._meta.get_field(field).max_length]


def job_claim(kind: JobKind, pk: int, *, worker: str, task_id: str = "") -> Job | None:
    """pending -> claimed under a row lock, recording task id, worker and start; None when no longer pending."""
    with transaction.atomic():
        job = kind.locked(pk)
        if job is None or job.status != kind.pending or not kind.claim_check(job):
            return None
        now = timezone.now()
        job.status = kind.claimed
        job.started_at = job.heartbeat_at = now
        job.worker = _fit(kind.model, "worker", worker)
        job.task_id = _fit(kind.model, "task_id", task_id) or job.task_id
        fields = ["status", "started_at", "heartbeat_at", "worker", "task_id", *kind.claimed_fields(job)]
        job.save(update_fields=fields)
        kind.on_claimed(job)
    return job


def job_heartbeat(kind: JobKind, pk: int, *, pgid: int | None = None, fields: dict[str, Any] | None = None) -> bool:
    """Mark an in-flight job alive; True when a cancel was requested or the job is no longer in flight."""
    values: dict[str, Any] = {"heartbeat_at": timezone.now(), **(fields or {})}
    if pgid is not None:
        values["pgid"] = pgid
    if not kind.model.objects.filter(pk=pk, status__in=kind.in_flight).update(**values):
        return True
    row = kind.model.objects.filter(pk=pk).values("status", "cancel_requested").first()
    return row is None or row["cancel_requested"] or row["status"] not in kind.in_flight


def job_log(kind: JobKind, pk: int, rows: list[dict[str, Any]]) -> tuple[int, int]:
    """Append log lines (dicts of the log model's fields) in order; returns (previous last seq, lines written)."""
    if not rows:
        return 0, 0
    with transaction.atomic():
        job = kind.model.objects.select_for_update().only("pk", "log_seq").get(pk=pk)
        start = job.log_seq
        keep = rows
        cap = kind.log_cap
        if cap is not None:
            room = max(0, cap - start)
            keep = rows[:room]
            if len(rows) > room and start < cap + 1:
                keep.append(kind.truncation_line(cap))
        kind.log_model.objects.bulk_create(
            [kind.log_model(**{kind.log_fk: pk, "seq": start + i + 1, **row}) for i, row in enumerate(keep)]
        )
        kind.model.objects.filter(pk=pk).update(log_seq=start + len(keep))
    return start, len(keep)


def job_cancel_request(kind: JobKind, pk: int) -> bool:
    """Ask the worker of an in-flight job to cancel it (its next heartbeat answers True); False if not in flight."""
    return bool(kind.model.objects.filter(pk=pk, status__in=kind.in_flight).update(cancel_requested=True))


def job_finish(
    kind: JobKind,
    pk: int,
    *,
    status: str,
    error: str | Callable[[Job], str] = "",
    finished_at: dt.datetime | None = None,
    stale_before: dt.datetime | None = None,
    **kw: Any,
) -> Job | None:
    """Finishable -> `status` with its error; idempotent: None when the job is no longer finishable (or, with
    `stale_before`, when it heartbeat since). `kw` goes to the kind's hooks."""
    with transaction.atomic():
        job = kind.locked(pk)
        if job is None or job.status not in kind.finishable:
            return None
        if stale_before is not None and job.heartbeat_at is not None and job.heartbeat_at >= stale_before:
            return None
        job.status = status
        job.finished_at = finished_at or timezone.now()
        job.error = ((error(job) if callable(error) else error) or "")[: kind.error_max]
        fields = ["status", "finished_at", "error", *kind.finishing(job, **kw)]
        job.save(update_fields=fields)
        kind.on_finished(job, **kw)
    return job


def job_reap(kind: JobKind, *, bound_s: float, now: dt.datetime | None = None) -> list[int]:
    """Fail in-flight jobs whose heartbeat is older than the bound (or never came); returns their ids."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=bound_s)
    stale = kind.model.objects.filter(status__in=kind.in_flight).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True)
    )
    reaped: list[int] = []
    for pk in list(stale.values_list("pk", flat=True)):
        job = kind.model.objects.filter(pk=pk).first()
        if job is None:
            continue
        kind.before_reap(job)
        done = job_finish(
            kind,
            pk,
            status=kind.failed,
            error=lambda j: kind.reap_error(j, now=now, bound=bound_s),
            finished_at=kind.reap_finished_at(now),
            stale_before=cutoff,
            reaped=True,
        )
        if done is not None:
            reaped.append(pk)
    return reaped
