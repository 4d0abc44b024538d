"""Terminal sessions: an audited PTY in a workspace, relayed between the workspace agent and a browser or client."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from .workspaces import Workspace


class TerminalSession(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="terminal_sessions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    client = models.CharField(max_length=20, default="browser", help_text="browser (session cookie) or token")
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=200, blank=True)
    bytes_in = models.PositiveBigIntegerField(default=0, help_text="keystrokes sent to the workspace")
    bytes_out = models.PositiveBigIntegerField(default=0, help_text="terminal output sent to the client")
    recorded = models.BooleanField(default=False)
    recording = models.TextField(blank=True, help_text="asciicast v2, when the template records sessions")
    recording_truncated = models.BooleanField(default=False)

    class Meta:
        ordering = ["-opened_at"]
        indexes = [models.Index(fields=["workspace", "opened_at"], name="terminal_ws_opened")]

    def __str__(self) -> str:
        return f"terminal {self.pk} on {self.workspace_id}"

    @property
    def duration_s(self) -> float | None:
        if self.closed_at:
            return round((self.closed_at - self.opened_at).total_seconds(), 3)
        return None
