"""Model calls through Goldpath's model gateway: one row per call a run's CLI made (refused ones included),
with the upstream's usage, the cost from the price table, and the exact bodies for the run's transcript digest."""

from __future__ import annotations

from django.db import models

from .agents import AgentRun
from .teams import Team
from .tools import AITool


class ModelCall(models.Model):
    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="calls")
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
        indexes = [models.Index(fields=["team", "tool", "created_at"], name="model_call_team_tool_at")]

    def __str__(self) -> str:
        return f"model call {self.pk} of run {self.run_id}: {self.model}"
