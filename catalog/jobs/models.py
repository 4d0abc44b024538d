"""The abstract job row and log line every background unit shares (DESIGN.md convention 4).

The fields all jobs spell alike live here. Five fields predate the framework and keep their column names per
model (renaming them would change the API, the pages and stored rows); `JobFields` maps the framework's one set
of names onto them, so `lifecycle` never spells a model's own name.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

from django.db import models


class JobFields(NamedTuple):
    """The model's column for each of the framework's names."""

    task_id: str  # the Celery task that claimed the job
    worker: str  # the worker (host) that runs it
    pgid: str  # the process (group) to kill when the worker is lost
    log_seq: str  # the last log line's sequence number
    channel: str  # the log line's source: a build's stage, a run's stream


class Job(models.Model):
    """Status timestamps, heartbeat, error and cancel flag; the subclass adds `status` and its mapped fields."""

    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)

    job_fields: ClassVar[JobFields]

    class Meta:
        abstract = True

    def job_value(self, name: str):
        """The value of the framework's field `name` (see JobFields)."""
        return getattr(self, getattr(self.job_fields, name))


class JobLogLine(models.Model):
    """One log line of a job; the subclass adds its job's foreign key and its channel field."""

    seq = models.PositiveIntegerField()
    text = models.TextField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
