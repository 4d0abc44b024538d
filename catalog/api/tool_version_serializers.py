"""Tool version serializers of the tools API (catalog.api.tools serves them)."""

from __future__ import annotations

from django.db.models import Prefetch
from rest_framework import serializers

from ..models import ToolVersion, ToolVersionApproval
from .serializers import StrictSerializerMixin


class ToolVersionSerializer(serializers.ModelSerializer):
    """A tool version as the API shows it (`argv` is an alias of `launch_command`, `models` of `model_names`)."""

    argv = serializers.JSONField(source="launch_command", read_only=True, help_text="alias of launch_command")
    models = serializers.JSONField(source="model_names", read_only=True)
    approvals = serializers.SerializerMethodField(help_text="usernames of the platform engineers who approved it")
    approvals_required = serializers.IntegerField(source="tool.required_approvals", read_only=True)
    proposed_by = serializers.SlugRelatedField(source="created_by", slug_field="username", read_only=True)

    class Meta:
        model = ToolVersion
        fields = [
            "id",
            "version",
            "release_notes_url",
            "runtime",
            "launch_command",
            "argv",
            "env",
            "egress_hosts",
            "models",
            "usage_format",
            "per_use_cost",
            "review_state",
            "approvals",
            "approvals_required",
            "proposed_by",
            "reviewed_at",
            "review_reason",
            "created_at",
        ]
        read_only_fields = fields

    def get_approvals(self, version: ToolVersion) -> list[str]:
        return [a.reviewer.username for a in version.approvals.all()]


def version_queryset():
    return ToolVersion.objects.select_related("tool", "created_by").prefetch_related(
        Prefetch("approvals", queryset=ToolVersionApproval.objects.select_related("reviewer"))
    )


class ToolVersionChangeSerializer(StrictSerializerMixin, serializers.Serializer):
    """PATCH input: every field optional; a change to runtime, launch_command, env, egress_hosts or models sends
    an approved version back to review. The service checks the values (one rule for the API and the pages)."""

    release_notes_url = serializers.URLField(required=False, allow_blank=True, max_length=200)
    runtime = serializers.JSONField(
        required=False, help_text='{"kind": "npm"|"pypi", "package": name, "version": exact release}; {}: built in'
    )
    launch_command = serializers.JSONField(
        required=False,
        help_text="argv template (a list of strings, never a shell string); one element contains {prompt}; "
        "{model} and {index} are filled per run.",
    )
    env = serializers.JSONField(
        required=False, help_text="non-secret environment: UPPER_CASE names to strings (no keys, tokens, base URLs)"
    )
    models = serializers.JSONField(
        required=False, help_text="model names this version may use; the first is the default"
    )
    model_names = serializers.JSONField(required=False, help_text="older name of `models`")
    egress_hosts = serializers.JSONField(
        required=False,
        help_text="Hosts agent runs may reach through the egress proxy when their group allows it: `host`, "
        "`*.suffix`, IP literals, each with an optional `:port` (without one: ports 80 and 443). Platform "
        "engineers and admins only.",
    )
    usage_format = serializers.CharField(required=False, max_length=30, help_text="claude-stream-json, codex-json, ...")
    per_use_cost = serializers.DecimalField(max_digits=10, decimal_places=4, required=False, allow_null=True)


class ToolVersionCreateSerializer(ToolVersionChangeSerializer):
    version = serializers.CharField(max_length=50)


class VersionApprovalSerializer(ToolVersionSerializer):
    approvals_collected = serializers.IntegerField(read_only=True)
    complete = serializers.BooleanField(read_only=True)

    class Meta(ToolVersionSerializer.Meta):
        fields = [*ToolVersionSerializer.Meta.fields, "approvals_collected", "complete"]
        read_only_fields = fields
