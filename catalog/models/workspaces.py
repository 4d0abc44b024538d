"""Golden-path templates (immutable versions) and workspaces built from them by Terraform builds.

A `TemplateVersion` keeps its Terraform files in the database (path -> text), so a worker on any
machine can materialise them; once published it never changes (content hash). A `Workspace` is
changed only by `WorkspaceBuild`s; at most one build of a workspace is pending or running at a
time (row lock on the workspace in the services + the partial unique constraint below).
"""

from __future__ import annotations

import hashlib
import json
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from ..jobs.models import Job, JobLogLine
from ..template_variables import BUILTIN_VARIABLES
from .teams import SLUG_VALIDATOR, Team
from .tools import AITool, DataClassification


def files_hash(files: dict[str, str]) -> str:
    """Content hash of a template's files (sorted paths, exact text)."""
    return hashlib.sha256(json.dumps(files, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class WorkspaceTemplate(models.Model):
    """A golden path: metadata plus versions. `tools` empty means it offers every approved tool."""

    slug = models.CharField(max_length=50, unique=True, validators=[SLUG_VALIDATOR])
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    icon = models.CharField(max_length=16, blank=True, default="")
    owner_team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="templates")
    data_classification = models.CharField(
        max_length=20, choices=DataClassification.choices, default=DataClassification.INTERNAL
    )
    tools = models.ManyToManyField(AITool, blank=True, related_name="templates")
    active_version = models.ForeignKey(
        "TemplateVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    record_sessions = models.BooleanField(
        default=False, help_text="keep every terminal session of its workspaces as an asciicast recording"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def offers_tool(self, tool: AITool) -> bool:
        """The policy's template hook: an empty tool list offers every tool."""
        ids = getattr(self, "_offered_ids", None)
        if ids is None:
            ids = self._offered_ids = set(self.tools.values_list("pk", flat=True))
        return not ids or tool.pk in ids


class TemplateVersionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    DEPRECATED = "deprecated", "Deprecated"


class TemplateVersion(models.Model):
    template = models.ForeignKey(WorkspaceTemplate, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    files = models.JSONField(default=dict, help_text="relative path -> file text")
    content_hash = models.CharField(max_length=64)
    changelog = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=TemplateVersionStatus.choices, default="draft")
    parameters = models.JSONField(default=list, blank=True, help_text="parsed variable blocks, in order")
    outputs_sensitive = models.JSONField(default=list, blank=True)
    diagnostics = models.TextField(blank=True)
    publish_requested_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["template", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["template", "number"], name="uniq_template_version_number"),
            models.UniqueConstraint(fields=["template", "content_hash"], name="uniq_template_version_hash"),
        ]

    def __str__(self) -> str:
        return f"{self.template.slug} v{self.number}"

    @property
    def slug(self) -> str:
        return self.template.slug

    def offers_tool(self, tool: AITool) -> bool:
        return self.template.offers_tool(tool)

    @property
    def form_parameters(self) -> list[dict]:
        return [p for p in self.parameters if p["name"] not in BUILTIN_VARIABLES]

    @property
    def is_active(self) -> bool:
        return self.template.active_version_id == self.pk


class WorkspaceStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"
    FAILED = "failed", "Failed"


class Transition(models.TextChoices):
    START = "start", "Start"
    STOP = "stop", "Stop"
    DELETE = "delete", "Delete"


class BuildStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


ACTIVE_BUILD_STATUSES = (BuildStatus.PENDING, BuildStatus.RUNNING)


class AgentState(models.TextChoices):
    """The workspace agent's link to the portal (catalog.terminals): `connecting` from the start build until the
    agent says hello, `ready` while its WebSocket is open, `disconnected` once it closed."""

    NONE = "", "No agent"
    CONNECTING = "connecting", "Connecting"
    READY = "ready", "Ready"
    DISCONNECTED = "disconnected", "Disconnected"


class Workspace(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=63)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="workspaces")
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="workspaces")
    template = models.ForeignKey(WorkspaceTemplate, on_delete=models.PROTECT, related_name="workspaces")
    template_version = models.ForeignKey(TemplateVersion, on_delete=models.PROTECT, related_name="workspaces")
    parameters = models.JSONField(default=dict, blank=True)
    tools = models.ManyToManyField(AITool, blank=True, related_name="workspaces")
    classification = models.CharField(max_length=20, choices=DataClassification.choices)
    status = models.CharField(max_length=20, choices=WorkspaceStatus.choices, default=WorkspaceStatus.PENDING)
    outputs = models.JSONField(default=dict, blank=True, help_text="last outputs, sensitive values masked")
    ttl_hours = models.PositiveIntegerField(null=True, blank=True, help_text="autostop after this many idle hours")
    last_activity_at = models.DateTimeField(null=True, blank=True)
    agent_state = models.CharField(max_length=20, choices=AgentState.choices, default="", blank=True)
    agent_token_sha256 = models.CharField(max_length=64, blank=True, help_text="hash of the agent token of this start")
    agent_connected_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "name"], condition=~Q(status="deleted"), name="uniq_live_workspace_name_per_owner"
            )
        ]

    def __str__(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def state_key(self) -> str:
        """Terraform state identity (pg schema name / local state folder)."""
        return "ws_" + self.id.hex

    @property
    def update_available(self) -> bool:
        return bool(self.template.active_version_id and self.template.active_version_id != self.template_version_id)


class WorkspaceBuild(Job):
    """One Terraform run (start, stop or delete) of a workspace: a job (catalog.jobs) whose finish sets the
    workspace's status."""


    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="builds")
    number = models.PositiveIntegerField()
    transition = models.CharField(max_length=10, choices=Transition.choices)
    status = models.CharField(max_length=12, choices=BuildStatus.choices, default=BuildStatus.PENDING)
    template_version = models.ForeignKey(TemplateVersion, on_delete=models.PROTECT, related_name="builds")
    parameters = models.JSONField(default=dict, blank=True, help_text="snapshot of the workspace's parameters")
    tools = models.JSONField(default=list, blank=True, help_text="snapshot: [{slug, version, launch_command}]")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    queued_at = models.DateTimeField(auto_now_add=True)
    progress = models.FloatField(default=0.0)
    stage = models.CharField(max_length=20, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    prior_status = models.CharField(max_length=20, blank=True, help_text="workspace status before this build")

    class Meta:
        ordering = ["-queued_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "number"], name="uniq_build_number_per_workspace"),
            models.UniqueConstraint(
                fields=["workspace"],
                condition=Q(status__in=["pending", "running"]),
                name="one_active_build_per_workspace",
            ),
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="build_status_heartbeat")]

    def __str__(self) -> str:
        return f"build {self.pk} ({self.transition} {self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_BUILD_STATUSES

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class BuildLogLine(JobLogLine):
    build = models.ForeignKey(WorkspaceBuild, on_delete=models.CASCADE, related_name="log_lines")
    stage = models.CharField(max_length=20)
    level = models.CharField(max_length=10, default="info")

    class Meta:
        ordering = ["build", "seq"]
        constraints = [models.UniqueConstraint(fields=["build", "seq"], name="uniq_build_log_seq")]

    def __str__(self) -> str:
        return f"{self.build_id}#{self.seq} {self.text[:60]}"


class TeamQuota(models.Model):
    """Per-team limits; a team without a row gets the defaults from settings."""

    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="quota")
    max_workspaces = models.PositiveIntegerField(null=True, blank=True)
    max_concurrent_builds = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"quota {self.team}"
