"""Django admin: it reads the governed models and changes none of them.

Tools, approvals, versions, grants, access requests, teams and their members, roles, repositories and the audit
log change only through the services, which check the rules and write the audit event (an admin-made
`ToolApproval` would be a forged approval; a risk tier edited here would skip the audit and the re-review). The
team pages and the API are where admins change them. Team membership is the team's Django group, so the host's
group and user admin pages are narrowed too: a team's group cannot be edited or deleted there, and a user's
team groups are neither offered nor dropped by the user form.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from .models import (
    AccessGrant,
    AccessRequest,
    AITool,
    AuditEvent,
    Notification,
    Profile,
    Repository,
    Team,
    ToolApproval,
    ToolVersion,
)

TEAM_GROUP_HELP = "Team memberships are changed on the team's page or through the API (audited), not here."


class ReadOnlyAdmin(admin.ModelAdmin):
    """Changed only through the services (rules checked, audited): the admin lists and shows, nothing more."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ToolVersionInline(ReadOnlyInline):
    model = ToolVersion
    fields = ("version", "review_state", "runtime", "launch_command", "created_by", "created_at")
    readonly_fields = fields


@admin.register(AITool)
class AIToolAdmin(ReadOnlyAdmin):
    list_display = ("slug", "name", "vendor", "kind", "risk_tier", "status", "review_due", "owner_team")
    list_filter = ("status", "kind", "risk_tier", "max_data_classification")
    search_fields = ("slug", "name", "vendor")
    inlines = [ToolVersionInline]


@admin.register(ToolApproval)
class ToolApprovalAdmin(ReadOnlyAdmin):
    list_display = ("tool", "reviewer", "created_at")


@admin.register(Team)
class TeamAdmin(ReadOnlyAdmin):
    list_display = ("slug", "name", "member_list", "manager_list")
    search_fields = ("slug", "name")
    fields = ("slug", "name", "description", "member_list", "manager_list", "created_at")
    readonly_fields = fields

    @admin.display(description="members")
    def member_list(self, team: Team) -> str:
        return ", ".join(team.members.order_by("username").values_list("username", flat=True))

    @admin.display(description="managers")
    def manager_list(self, team: Team) -> str:
        return ", ".join(team.managers.order_by("username").values_list("username", flat=True))


@admin.register(Profile)
class ProfileAdmin(ReadOnlyAdmin):
    """Roles change through the team services (`user_set_role`), audited."""

    list_display = ("user", "role")
    list_filter = ("role",)


admin.site.register(Notification)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "actor_repr", "verb", "target_type", "target_repr", "request_id")
    list_filter = ("verb", "target_type")
    search_fields = ("actor_repr", "target_repr", "verb", "request_id")


@admin.register(AccessRequest)
class AccessRequestAdmin(ReadOnlyAdmin):
    list_display = ("id", "tool", "team", "requester", "status", "decided_by", "created_at")
    list_filter = ("status",)


@admin.register(AccessGrant)
class AccessGrantAdmin(ReadOnlyAdmin):
    list_display = ("id", "team", "tool", "state", "expires_at", "max_data_classification", "seats", "created_at")
    list_filter = ("state",)


@admin.register(Repository)
class RepositoryAdmin(ReadOnlyAdmin):
    """Registered through the services (URL checks, audit); the credential is never shown, only its last 4."""

    list_display = ("slug", "name", "url", "data_classification", "default_branch", "credential_last4", "created_at")
    list_filter = ("data_classification", "teams")
    search_fields = ("slug", "name", "url")
    fields = (
        "slug",
        "name",
        "url",
        "teams",
        "data_classification",
        "default_branch",
        "credential_last4",
        "created_by",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields


# --- the host's group and user pages: a team's group is its membership ----------------------------------


def _is_team_group(group: Any) -> bool:
    return group is not None and Team.objects.filter(group_id=group.pk).exists()


def _narrow_group_admin(base: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    class TeamGroupAdmin(base):  # type: ignore[misc, valid-type]
        """A team's group is read-only here (its members are the team's); other groups as the host had them."""

        def has_change_permission(self, request, obj=None) -> bool:
            return super().has_change_permission(request, obj) and not _is_team_group(obj)

        def has_delete_permission(self, request, obj=None) -> bool:
            return super().has_delete_permission(request, obj) and not _is_team_group(obj)

    return TeamGroupAdmin


def _narrow_user_admin(base: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    class TeamSafeUserAdmin(base):  # type: ignore[misc, valid-type]
        """The user form offers only groups that are not teams, and keeps the user's team groups as they are."""

        def formfield_for_manytomany(self, db_field, request, **kwargs):
            if db_field.name == "groups":
                kwargs["queryset"] = Group.objects.filter(team__isnull=True)
                kwargs["help_text"] = TEAM_GROUP_HELP
            return super().formfield_for_manytomany(db_field, request, **kwargs)

        def save_related(self, request, form, formsets, change) -> None:
            user = form.instance
            kept = list(user.groups.filter(team__isnull=False)) if change else []
            super().save_related(request, form, formsets, change)
            if kept:
                user.groups.add(*kept)

    return TeamSafeUserAdmin


def _narrow_host_admin(site: admin.AdminSite) -> None:
    """Narrow the group and user admins the host registered (django.contrib.auth's or its own). A host that
    registers them after Goldpath's admin module is imported gets them as it registered them."""
    for model, narrow in ((Group, _narrow_group_admin), (get_user_model(), _narrow_user_admin)):
        if not site.is_registered(model):
            continue
        current = site._registry[model]
        if getattr(current, "_goldpath_narrowed", False):
            continue
        narrowed = narrow(type(current))
        narrowed._goldpath_narrowed = True
        site.unregister(model)
        site.register(model, narrowed)


_narrow_host_admin(admin.site)
