"""Tool access: requests from developers, and grants backed by django-guardian object permissions.

A grant (team x tool) is enforced through guardian's `use_aitool` object permission on the tool
for the team's group, stored in the direct foreign-key table `AIToolGroupObjectPermission`
(guardian's documented fast path, no generic content-type join). `AccessGrant.permission` points
at that row: a grant is in force only while it is `active`, unexpired and its permission row exists.
Revoked and expired grants stay as history (state + who/when/why) and in the audit log.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from .teams import Team
from .tools import AITool, DataClassification


class AIToolUserObjectPermission(UserObjectPermissionBase):
    """Direct-FK user object permissions on tools (unused by grants, which go to teams)."""

    content_object = models.ForeignKey(AITool, on_delete=models.CASCADE)


class AIToolGroupObjectPermission(GroupObjectPermissionBase):
    """Direct-FK group object permissions on tools: `use_aitool` for a team's group."""

    content_object = models.ForeignKey(AITool, on_delete=models.CASCADE)


class AccessRequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class AccessRequest(models.Model):
    """A developer asks for their team to use a tool; a platform engineer (not the requester) decides."""

    tool = models.ForeignKey(AITool, on_delete=models.CASCADE, related_name="access_requests")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="access_requests")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="access_requests")
    justification = models.TextField()
    status = models.CharField(
        max_length=10, choices=AccessRequestStatus.choices, default=AccessRequestStatus.PENDING, db_index=True
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "tool"], condition=Q(status="pending"), name="uniq_pending_access_request"
            )
        ]

    def __str__(self) -> str:
        return f"request #{self.pk}: {self.team} -> {self.tool}"


class GrantState(models.TextChoices):
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


class AccessGrantQuerySet(models.QuerySet):
    def in_force(self, now=None):
        """Active, unexpired, and still backed by its guardian permission row."""
        now = now or timezone.now()
        return self.filter(state=GrantState.ACTIVE, permission__isnull=False).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class AccessGrant(models.Model):
    """Team x tool permission to use the tool, optionally expiring and narrowing the classification."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="grants")
    tool = models.ForeignKey(AITool, on_delete=models.CASCADE, related_name="grants")
    permission = models.OneToOneField(
        AIToolGroupObjectPermission,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="grant",
        help_text="the guardian use_aitool row that enforces this grant; cleared on revocation or expiry",
    )
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    request = models.ForeignKey(AccessRequest, on_delete=models.SET_NULL, null=True, blank=True, related_name="grants")
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    max_data_classification = models.CharField(
        max_length=20,
        choices=DataClassification.choices,
        blank=True,
        help_text="narrows the tool's own clearance for this team; blank means the tool's clearance",
    )
    seats = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    budget_usd = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="model spend allowed per calendar month (UTC) through the gateway; blank: no budget",
    )
    state = models.CharField(max_length=10, choices=GrantState.choices, default=GrantState.ACTIVE, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    end_reason = models.TextField(blank=True)
    expiry_warning_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AccessGrantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["team", "tool"], condition=Q(state="active"), name="uniq_active_grant")
        ]

    def __str__(self) -> str:
        return f"{self.team} may use {self.tool}"

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @property
    def effective_classification(self) -> str:
        return self.max_data_classification or self.tool.max_data_classification
