"""Notification outbox: written with the decision, delivered by a task after commit."""

from __future__ import annotations

from django.db import models


class Notification(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    event = models.CharField(max_length=64)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    recipients = models.JSONField(default=list, blank=True)
    link = models.CharField(max_length=300, blank=True)
    email_status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    webhook_status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.subject
