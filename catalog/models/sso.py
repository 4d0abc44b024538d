"""Single sign-on (OIDC): who a provider's subject is here, and what the sign-in sync maps and grants.

The rules that map a claim to teams and roles, and which memberships and roles the sign-in sync granted (so it
only ever takes back what it gave).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .teams import Role, Team


class TeamLevel(models.TextChoices):
    MEMBER = "member", "Member"
    MANAGER = "manager", "Manager"


class SsoIdentity(models.Model):
    """A provider's stable subject (`iss` + `sub`) bound to one user: usernames and emails may change or be
    reused at the provider, so a returning user is found by this pair and nothing else."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identity")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    claim_values = models.JSONField(default=list, blank=True, help_text="the mapped claim's values at the last sign-in")
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_unique_subject")]

    def __str__(self) -> str:
        return f"{self.subject}@{self.issuer}"


class SsoMappingRule(models.Model):
    """One claim value -> a team membership (member or manager) or a role. Platform admins edit these."""

    claim_value = models.CharField(max_length=255)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, null=True, blank=True, related_name="sso_rules")
    team_level = models.CharField(max_length=10, choices=TeamLevel.choices, blank=True)
    role = models.CharField(max_length=32, choices=Role.choices, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["claim_value", "pk"]
        constraints = [
            models.CheckConstraint(
                name="sso_rule_one_target",
                condition=(
                    models.Q(team__isnull=False, role="", team_level__in=["member", "manager"])
                    | models.Q(team__isnull=True, team_level="", role__in=Role.values)
                ),
            ),
            models.UniqueConstraint(
                fields=["claim_value", "team"], condition=models.Q(team__isnull=False), name="sso_rule_unique_team"
            ),
            models.UniqueConstraint(
                fields=["claim_value", "role"], condition=models.Q(team__isnull=True), name="sso_rule_unique_role"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.claim_value} -> {self.target_label}"

    @property
    def target_label(self) -> str:
        if self.team_id:
            return f"{TeamLevel(self.team_level).label.lower()} of {self.team.slug}"
        return f"role {Role(self.role).label.lower()}"


class SsoMembership(models.Model):
    """What the sign-in sync granted in one team: the membership, the managership, or both. Anything a person
    granted by hand is not recorded here and so is never taken back by a sync."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="sso_memberships")
    granted_member = models.BooleanField(default=False)
    granted_manager = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="sso_membership_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.team_id}"


class SsoRoleGrant(models.Model):
    """The role the sign-in sync set, and the role the user had before, given back when no rule applies."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_role_grant")
    role = models.CharField(max_length=32, choices=Role.choices)
    previous_role = models.CharField(max_length=32, choices=Role.choices, default=Role.DEVELOPER)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.role}"
