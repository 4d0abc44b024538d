"""Model calls through Goldpath's model gateway: one row per call, with its usage, cost and exact bodies.

A row is written for every call a run's CLI, or a tool inside a workspace, made (refused ones included), with
the upstream's usage, the cost from the price table, and the exact bodies for the run's transcript digest. A call belongs to exactly one of a run or a workspace (the meter it is charged to).

A workspace's gateway credential (`WorkspaceGatewayKey`) is minted on every start (catalog.services.
workspace_tools): only its SHA-256 is kept, with the tool versions the policy allowed at that start; a new start
revokes the previous key, a stop or delete revokes it too, and the gateway refuses it unless the workspace runs."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from .agents import AgentRun
from .teams import Team
from .tools import AITool


class ModelCall(models.Model):
    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="calls", null=True, blank=True)
    workspace = models.ForeignKey(
        "catalog.Workspace", on_delete=models.CASCADE, related_name="model_calls", null=True, blank=True
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    tool = models.ForeignKey(AITool, on_delete=models.CASCADE, related_name="+")
    protocol = models.CharField(max_length=30, help_text="anthropic-messages, openai-responses, openai-chat")
    model = models.CharField(max_length=200, blank=True)
    streamed = models.BooleanField(default=False)
    upstream = models.CharField(max_length=200, blank=True, help_text="the upstream's host, or `demo`")
    status_code = models.PositiveSmallIntegerField(default=0)
    refused = models.CharField(max_length=500, blank=True, help_text="why the gateway refused the call")
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    latency_ms = models.PositiveIntegerField(default=0, help_text="request received to last byte sent")
    request_body = models.BinaryField(default=b"")
    response_body = models.BinaryField(default=b"")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "id"]
        indexes = [
            models.Index(fields=["team", "tool", "created_at"], name="model_call_team_tool_at"),
            models.Index(fields=["workspace", "created_at"], name="model_call_workspace_at"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(run__isnull=False, workspace__isnull=True) | Q(run__isnull=True, workspace__isnull=False),
                name="model_call_run_xor_workspace",
            )
        ]

    def __str__(self) -> str:
        owner = f"run {self.run_id}" if self.run_id else f"workspace {self.workspace_id}"
        return f"model call {self.pk} of {owner}: {self.model}"


class WorkspaceGatewayKey(models.Model):
    """One start's gateway credential of a workspace (its hash only) and the tool versions it may call models for."""

    workspace = models.ForeignKey("catalog.Workspace", on_delete=models.CASCADE, related_name="gateway_keys")
    build = models.ForeignKey(
        "catalog.WorkspaceBuild", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    token_sha256 = models.CharField(max_length=64, unique=True)
    tool_versions = models.JSONField(default=list, blank=True, help_text="ids of the tool versions allowed at start")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "revoked_at"], name="ws_gateway_key_live")]

    def __str__(self) -> str:
        state = "revoked" if self.revoked_at else "live"
        return f"gateway key {self.pk} of workspace {self.workspace_id} ({state})"
