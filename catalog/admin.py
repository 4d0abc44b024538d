"""Django admin for everything; audit events are read-only."""

from django.contrib import admin

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


class ToolVersionInline(admin.TabularInline):
    model = ToolVersion
    extra = 0


@admin.register(AITool)
class AIToolAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "vendor", "kind", "risk_tier", "status", "review_due", "owner_team")
    list_filter = ("status", "kind", "risk_tier", "max_data_classification")
    search_fields = ("slug", "name", "vendor")
    readonly_fields = ("status", "review_due", "proposed_by", "created_at", "updated_at")
    inlines = [ToolVersionInline]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("slug", "name")
    filter_horizontal = ("members", "managers")


admin.site.register(Profile)
admin.site.register(ToolApproval)
admin.site.register(Notification)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "actor_repr", "verb", "target_type", "target_repr", "request_id")
    list_filter = ("verb", "target_type")
    search_fields = ("actor_repr", "target_repr", "verb", "request_id")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Changed only through services (audited, guardian row kept in step): the admin reads."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


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
