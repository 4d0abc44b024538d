"""Teams and roles, built on Django users and groups so django-guardian can grant to a team."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models

SLUG_VALIDATOR = RegexValidator(
    r"^[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?$",
    "Use 1-50 lowercase letters, digits and hyphens, starting and ending with a letter or digit.",
)


class Role(models.TextChoices):
    DEVELOPER = "developer", "Developer"
    PLATFORM_ENGINEER = "platform_engineer", "Platform engineer"
    MANAGER = "manager", "Manager"
    AUDITOR = "auditor", "Auditor"
    ADMIN = "admin", "Admin"


class Team(models.Model):
    """A team. Its `group` is the one record of who belongs to it: django-guardian grants tools to the group,
    the policy reads the group, and `members` reads it too. Managers are also members (the team services keep
    them in the group); `managers` only says who manages the team."""

    slug = models.CharField(max_length=50, unique=True, validators=[SLUG_VALIDATOR])
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="team")
    managers = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="managed_teams", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def members(self) -> models.QuerySet:
        """The team's members: the users of its group (read-only; change them through catalog.services.teams)."""
        users = get_user_model().objects
        return users.none() if self.group_id is None else users.filter(groups=self.group_id)


def membership_table() -> str:
    """The table of who belongs to which team, for raw SQL (reports): the user-group links, joined on
    `group_id = team.group_id`."""
    return get_user_model().groups.through._meta.db_table


class Profile(models.Model):
    """A user's portal role; a user without a profile is a developer."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    role = models.CharField(max_length=32, choices=Role.choices, default=Role.DEVELOPER)

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"
