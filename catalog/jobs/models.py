"""The abstract job row and log line every background unit shares (DESIGN.md convention 4).

One set of names for what every job records: its Celery task, the worker running it, the process group to
kill when that worker is lost and the last log line's sequence number. Only the log line's source keeps a
name per kind (a build's `stage`, a run's `stream`: the API and the pages show them, and the framework never
reads it).
"""

from __future__ import annotations

from django.db import models


class Job(models.Model):
    """Status timestamps, heartbeat, error and cancel flag, task, worker, process group and log sequence; the
    subclass adds `status` and its own fields."""

    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    task_id = models.CharField(max_length=64, blank=True, help_text="the Celery task that claimed the job")
    worker = models.CharField(max_length=255, blank=True, help_text="the worker (host) that runs it")
    pgid = models.IntegerField(null=True, blank=True, help_text="the process group to kill when the worker is lost")
    log_seq = models.PositiveIntegerField(default=0, help_text="the last log line's sequence number")

    class Meta:
        abstract = True


class JobLogLine(models.Model):
    """One log line of a job; the subclass adds its job's foreign key and the line's source (stage, stream)."""

    seq = models.PositiveIntegerField()
    text = models.TextField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
