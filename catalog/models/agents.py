"""Parallel agent runs: one prompt fanned out to N agents (tool x count), each run in its own sandbox.

Each run has its own short-lived identity. Also here: vendor API keys per team x tool; signed provenance of
accepted results.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from ..jobs.models import Job, JobLogLine
from .teams import Team
from .tools import AITool, DataClassification, ToolVersion


class AgentGroupStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    CANCELED = "canceled", "Canceled"


class AgentRunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    TIMED_OUT = "timed_out", "Timed out"


RUN_ACTIVE = (AgentRunStatus.PENDING, AgentRunStatus.STARTING, AgentRunStatus.RUNNING)
RUN_IN_FLIGHT = (AgentRunStatus.STARTING, AgentRunStatus.RUNNING)
RUN_FINAL = (AgentRunStatus.SUCCEEDED, AgentRunStatus.FAILED, AgentRunStatus.CANCELED, AgentRunStatus.TIMED_OUT)


class NetworkPolicy(models.TextChoices):
    NONE = "none", "No network"
    ALLOW_LISTED = "allow_listed", "Only the tool's allowed hosts, through the egress proxy"


class AcceptStatus(models.TextChoices):
    NONE = "", "Not accepted"
    PENDING = "pending", "Committing"
    DONE = "done", "Committed"
    FAILED = "failed", "Failed"


class AgentGroup(models.Model):
    """One prompt fanned out to several agents; a launch snapshots tools, versions and decisions."""

    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="agent_groups")
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="agent_groups")
    prompt = models.TextField()
    prompt_sha256 = models.CharField(max_length=64)
    repository = models.ForeignKey(
        "catalog.Repository", on_delete=models.PROTECT, null=True, related_name="agent_groups"
    )
    repository_url = models.CharField(max_length=1000, help_text="the registered repository's address at launch")
    base_ref = models.CharField(max_length=250, default="HEAD")
    base_commit = models.CharField(max_length=64, blank=True)
    classification = models.CharField(
        max_length=20, choices=DataClassification.choices, default=DataClassification.INTERNAL
    )
    test_command = models.JSONField(default=list, blank=True, help_text="argv run in the sandbox after the agent")
    agents = models.JSONField(default=list, help_text='[{"tool": "slug", "count": N}]')
    time_limit_s = models.PositiveIntegerField(default=600)
    network_policy = models.CharField(max_length=20, choices=NetworkPolicy.choices, default=NetworkPolicy.NONE)
    decisions = models.JSONField(default=dict, blank=True, help_text="policy decision per tool at launch")
    status = models.CharField(
        max_length=20, choices=AgentGroupStatus.choices, default=AgentGroupStatus.PENDING, db_index=True
    )
    accepted_run = models.ForeignKey(
        "AgentRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_constraint=False
    )
    accept_status = models.CharField(max_length=20, choices=AcceptStatus.choices, default="", blank=True)
    accepted_commit = models.CharField(max_length=64, blank=True)
    accepted_branch = models.CharField(max_length=250, blank=True)
    accept_error = models.TextField(blank=True)
    # "Run agents here": the workspace whose current checkout (uncommitted changes included) the runs start from;
    # the snapshot is its changes against base_commit, taken once by the first run's worker
    workspace = models.ForeignKey(
        "catalog.Workspace", on_delete=models.SET_NULL, null=True, blank=True, related_name="agent_groups"
    )
    workspace_snapshot = models.TextField(blank=True, help_text="the checkout's uncommitted changes (binary diff)")
    workspace_snapshot_sha256 = models.CharField(max_length=64, blank=True, help_text="set once the snapshot is taken")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"agent group {self.pk}"


class AgentRun(Job):
    """One agent working on the group's prompt in its own sandbox and its own copy of the repository (a job:
    catalog.jobs)."""


    group = models.ForeignKey(AgentGroup, on_delete=models.CASCADE, related_name="runs")
    index = models.PositiveIntegerField()
    tool = models.ForeignKey(AITool, on_delete=models.PROTECT, related_name="agent_runs")
    tool_version = models.ForeignKey(ToolVersion, on_delete=models.PROTECT, related_name="agent_runs")
    argv_template = models.JSONField(default=list)
    model = models.CharField(max_length=200, blank=True, help_text="the model the run was pinned to")
    status = models.CharField(max_length=20, choices=AgentRunStatus.choices, default=AgentRunStatus.PENDING)
    workdir = models.CharField(max_length=1000, blank=True)
    sandbox = models.JSONField(default=dict, blank=True, help_text="policy, limits applied, policy hash")
    exit_code = models.IntegerField(null=True, blank=True)
    diff = models.TextField(blank=True)
    diff_stat = models.JSONField(default=dict, blank=True)
    test_exit_code = models.IntegerField(null=True, blank=True)
    test_output = models.TextField(blank=True)
    progress = models.CharField(max_length=500, blank=True, help_text="last progress the agent reported")
    result = models.JSONField(default=dict, blank=True, help_text="results the agent attached")
    # the gateway's figures (summed from its ModelCall rows when the run ends) and the CLI's own
    model_calls = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    models_used = models.JSONField(default=list, blank=True)
    reported_usage = models.JSONField(default=dict, blank=True, help_text="usage the CLI printed about itself")
    transcript_sha256 = models.CharField(max_length=64, blank=True)
    gateway_refusal = models.TextField(blank=True, help_text="why the gateway refused a model call of this run")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["group", "index"]
        constraints = [models.UniqueConstraint(fields=["group", "index"], name="uniq_agent_run_index")]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="agent_run_status_hb")]

    def __str__(self) -> str:
        return f"agent run {self.pk}"

    @property
    def principal(self) -> str:
        return f"agent:{self.pk}"

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        from django.utils import timezone

        end = self.finished_at or timezone.now()
        return round((end - self.started_at).total_seconds(), 2)


class ApplyStatus(models.TextChoices):
    PENDING = "pending", "Applying"
    APPLIED = "applied", "Applied"
    CONFLICT = "conflict", "Conflicts (nothing changed)"
    FAILED = "failed", "Failed"


class AgentApply(models.Model):
    """A run's diff applied into the workspace its group started from (catalog.agents.workspace_apply): who asked,
    what landed (files), or which paths conflicted (then the checkout was left exactly as it was)."""

    group = models.ForeignKey(AgentGroup, on_delete=models.CASCADE, related_name="applies")
    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="applies")
    workspace = models.ForeignKey("catalog.Workspace", on_delete=models.CASCADE, related_name="agent_applies")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=ApplyStatus.choices, default=ApplyStatus.PENDING)
    diff_sha256 = models.CharField(max_length=64)
    files = models.JSONField(default=list, blank=True, help_text="paths written into the checkout")
    conflicts = models.JSONField(default=list, blank=True, help_text="paths that did not merge cleanly")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"apply {self.pk} of run {self.run_id}"


class AgentRunLogLine(JobLogLine):
    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="log_lines")
    stream = models.CharField(max_length=10, default="stdout")

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="uniq_agent_log_seq")]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq}"


class TokenPurpose(models.TextChoices):
    AGENT = "agent", "Agent identity (the run's own socket)"
    GATEWAY = "gateway", "Model gateway credential"


class AgentIdentityToken(models.Model):
    """A short-lived credential of one run (`agent:<run id>`): its agent identity, or its model gateway
    credential; only the hash is stored, and both are revoked when the run ends."""

    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="identity_tokens")
    purpose = models.CharField(max_length=10, choices=TokenPurpose.choices, default=TokenPurpose.AGENT)
    token_sha256 = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"identity of agent:{self.run_id}"


class VendorApiKey(models.Model):
    """A vendor API key for one team x tool, Fernet-encrypted; the model gateway adds it to upstream requests
    only (it never enters a sandbox). `env_var` is kept for reference: what the vendor's tools call it."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="vendor_api_keys")
    tool = models.ForeignKey(AITool, on_delete=models.CASCADE, related_name="vendor_api_keys")
    env_var = models.CharField(max_length=100, help_text="environment variable the tool reads, e.g. ANTHROPIC_API_KEY")
    ciphertext = models.TextField()
    last4 = models.CharField(max_length=4, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "tool"], name="uniq_vendor_key_team_tool")]

    def __str__(self) -> str:
        return f"{self.tool.slug} key of {self.team.slug} (...{self.last4})"


class ProvenanceRecord(models.Model):
    """The signed in-toto-style statement tying an accepted commit to its prompt, human, agent and sandbox."""

    group = models.ForeignKey(AgentGroup, on_delete=models.PROTECT, related_name="provenance_records")
    run = models.ForeignKey(AgentRun, on_delete=models.PROTECT, related_name="provenance_records")
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="provenance_records")
    repository = models.ForeignKey(
        "catalog.Repository", on_delete=models.PROTECT, null=True, related_name="provenance_records"
    )
    repository_url = models.CharField(max_length=1000)
    branch = models.CharField(max_length=250)
    commit_sha = models.CharField(max_length=64, unique=True)
    tree_sha = models.CharField(max_length=64)
    statement = models.JSONField()
    signature = models.TextField(help_text="base64 Ed25519 signature over the canonical statement JSON")
    key_id = models.CharField(max_length=64, help_text="sha256 of the raw public key")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"provenance of {self.commit_sha[:12]}"
