"""AI tools API: catalog reads for everyone signed in; proposals, edits and lifecycle actions."""

from __future__ import annotations

import django_filters
from django.db.models import Prefetch, Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from ..models import (
    AITool,
    DataClassification,
    Team,
    ToolApproval,
    ToolKind,
    ToolStatus,
    ToolVersion,
    ToolVersionApproval,
)
from ..services import tool_versions
from ..services import tools as tool_services
from .parsers import PARSER_CLASSES


class StrictSerializerMixin:
    """Refuse unknown input fields with a 400 instead of silently ignoring them."""

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            unknown = set(data.keys()) - set(self.fields.keys())
            if unknown:
                raise serializers.ValidationError({k: ["Unknown field."] for k in sorted(unknown)})
        return super().to_internal_value(data)


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


class ToolSerializer(serializers.ModelSerializer):
    owner_team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    proposed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    approvals = serializers.SerializerMethodField()
    required_approvals = serializers.IntegerField(read_only=True)
    allowed_actions = serializers.SerializerMethodField()
    latest_version = serializers.SerializerMethodField()

    class Meta:
        model = AITool
        fields = [
            "slug",
            "name",
            "vendor",
            "kind",
            "risk_tier",
            "max_data_classification",
            "homepage",
            "description",
            "data_location",
            "pricing_note",
            "monthly_price_per_seat",
            "owner_team",
            "status",
            "review_due",
            "proposed_by",
            "approvals",
            "required_approvals",
            "allowed_actions",
            "latest_version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_approvals(self, tool: AITool) -> list[str]:
        return [a.reviewer.username for a in tool.approvals.all()]

    def get_allowed_actions(self, tool: AITool) -> list[str]:
        return [a.replace("_", "-") for a in tool_services.allowed_actions(tool)]

    def get_latest_version(self, tool: AITool) -> str | None:
        versions = list(tool.versions.all())
        return versions[0].version if versions else None


class ToolProposeSerializer(StrictSerializerMixin, serializers.ModelSerializer):
    owner_team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), required=False)

    class Meta:
        model = AITool
        fields = [
            "slug",
            "name",
            "vendor",
            "kind",
            "risk_tier",
            "max_data_classification",
            "homepage",
            "description",
            "data_location",
            "pricing_note",
            "monthly_price_per_seat",
            "owner_team",
        ]
        extra_kwargs = {
            f: {"required": True} for f in ("slug", "name", "vendor", "kind", "risk_tier", "max_data_classification")
        }


class ToolUpdateSerializer(ToolProposeSerializer):
    class Meta(ToolProposeSerializer.Meta):
        fields = [f for f in ToolProposeSerializer.Meta.fields if f != "slug"]
        extra_kwargs: dict = {}

    def to_internal_value(self, data):
        if hasattr(data, "keys") and "slug" in data:
            raise serializers.ValidationError({"slug": ["The slug cannot be changed."]})
        return super().to_internal_value(data)


class ReasonSerializer(StrictSerializerMixin, serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class RejectReasonSerializer(StrictSerializerMixin, serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class ApprovalSerializer(serializers.Serializer):
    tool = ToolSerializer()
    approvals = serializers.IntegerField()
    required = serializers.IntegerField()
    complete = serializers.BooleanField()


class ToolFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=ToolStatus.choices)
    kind = django_filters.MultipleChoiceFilter(choices=ToolKind.choices)
    risk_tier = django_filters.MultipleChoiceFilter(choices=AITool._meta.get_field("risk_tier").choices)
    max_data_classification = django_filters.ChoiceFilter(choices=DataClassification.choices)
    vendor = django_filters.CharFilter(lookup_expr="iexact")
    owner_team = django_filters.CharFilter(field_name="owner_team__slug")
    q = django_filters.CharFilter(method="text_search", label="Text search in name, slug, vendor and description")
    search = django_filters.CharFilter(method="text_search", label="Alias of q")
    usable = django_filters.BooleanFilter(
        method="filter_usable", label="true: only tools you may use now (approved, granted to your team, unexpired)"
    )

    class Meta:
        model = AITool
        fields = ["status", "kind", "vendor", "risk_tier", "max_data_classification", "owner_team"]

    def filter_usable(self, queryset, name, value):
        from ..selectors import usable_tools

        if value is None:
            return queryset
        usable = usable_tools(self.request.user)
        if value:
            return usable_tools(self.request.user, queryset)
        return queryset.exclude(pk__in=usable.values("pk"))

    def text_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(name__icontains=value)
            | Q(slug__icontains=value)
            | Q(vendor__icontains=value)
            | Q(description__icontains=value)
        )


def tool_queryset():
    return AITool.objects.select_related("owner_team", "proposed_by").prefetch_related(
        Prefetch("approvals", queryset=ToolApproval.objects.select_related("reviewer")),
        Prefetch("versions", queryset=ToolVersion.objects.order_by("-created_at", "-id")),
    )


class ToolViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The AI-tool catalog. Every signed-in user reads every tool, whatever its status."""

    parser_classes = PARSER_CLASSES

    lookup_field = "slug"
    lookup_value_regex = "[^/]+"
    serializer_class = ToolSerializer
    filterset_class = ToolFilter

    def get_queryset(self):
        return tool_queryset().order_by("name", "id")

    @extend_schema(request=ToolProposeSerializer, responses={201: ToolSerializer})
    def create(self, request: Request) -> Response:
        serializer = ToolProposeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tool = tool_services.tool_propose(actor=request.user, data=serializer.validated_data)
        return Response(ToolSerializer(tool_queryset().get(pk=tool.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ToolUpdateSerializer, responses={200: ToolSerializer})
    def partial_update(self, request: Request, slug: str) -> Response:
        tool = self.get_object()
        serializer = ToolUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        tool = tool_services.tool_update(tool=tool, actor=request.user, data=serializer.validated_data)
        return Response(ToolSerializer(tool_queryset().get(pk=tool.pk)).data)

    @extend_schema(methods=["GET"], responses={200: ToolVersionSerializer(many=True)})
    @extend_schema(methods=["POST"], request=ToolVersionCreateSerializer, responses={201: ToolVersionSerializer})
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def versions(self, request: Request, slug: str) -> Response:
        """The tool's versions, newest first; POST proposes one (it runs once approved)."""
        tool = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(version_queryset().filter(tool=tool).order_by("-created_at", "-id"))
            data = ToolVersionSerializer(page, many=True).data
            return self.get_paginated_response(data)
        serializer = ToolVersionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = tool_versions.tool_version_add(tool=tool, actor=request.user, data=serializer.validated_data)
        return Response(
            ToolVersionSerializer(version_queryset().get(pk=version.pk)).data, status=status.HTTP_201_CREATED
        )

    def _version(self, version: str) -> ToolVersion:
        return get_object_or_404(version_queryset(), tool=self.get_object(), version=version)

    @extend_schema(methods=["GET"], responses={200: ToolVersionSerializer})
    @extend_schema(
        methods=["PATCH"],
        request=ToolVersionChangeSerializer,
        responses={
            200: ToolVersionSerializer,
            400: OpenApiResponse(description="field errors"),
            403: OpenApiResponse(description="role may not change it (egress hosts: platform engineers and admins)"),
        },
    )
    @action(detail=True, methods=["get", "patch"], url_path=r"versions/(?P<version>[^/]+)", url_name="version-detail")
    def version_update(self, request: Request, slug: str, version: str) -> Response:
        """One version; PATCH changes it (audited with before and after; a change to what it runs needs a new
        review)."""
        target = self._version(version)
        if request.method == "GET":
            return Response(ToolVersionSerializer(target).data)
        serializer = ToolVersionChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        updated = tool_versions.tool_version_update(version=target, actor=request.user, data=serializer.validated_data)
        return Response(ToolVersionSerializer(version_queryset().get(pk=updated.pk)).data)

    @extend_schema(
        request=ReasonSerializer,
        responses={
            200: VersionApprovalSerializer,
            403: OpenApiResponse(description="not a platform engineer, or one of the version's authors"),
            409: OpenApiResponse(description="not proposed, the tool is in review, or you already approved it"),
        },
    )
    @action(detail=True, methods=["post"], url_path=r"versions/(?P<version>[^/]+)/approve", url_name="version-approve")
    def version_approve(self, request: Request, slug: str, version: str) -> Response:
        """Approve a proposed version (the tool's rule: two distinct platform engineers for high risk)."""
        target = self._version(version)
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = tool_versions.tool_version_approve(
            version=target, actor=request.user, reason=serializer.validated_data["reason"]
        )
        data = ToolVersionSerializer(version_queryset().get(pk=target.pk)).data
        return Response({**data, "approvals_collected": result.approvals, "complete": result.complete})

    @extend_schema(
        request=RejectReasonSerializer,
        responses={
            200: ToolVersionSerializer,
            403: OpenApiResponse(description="not a platform engineer"),
            409: OpenApiResponse(description="already rejected"),
        },
    )
    @action(detail=True, methods=["post"], url_path=r"versions/(?P<version>[^/]+)/reject", url_name="version-reject")
    def version_reject(self, request: Request, slug: str, version: str) -> Response:
        """Reject a proposed version or withdraw an approved one (a reason is required)."""
        target = self._version(version)
        serializer = RejectReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tool_versions.tool_version_reject(
            version=target, actor=request.user, reason=serializer.validated_data["reason"]
        )
        return Response(ToolVersionSerializer(version_queryset().get(pk=target.pk)).data)

    def _act(self, request: Request, slug: str, name: str) -> Response:
        tool = self.get_object()
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = tool_services.ACTIONS[name](tool=tool, actor=request.user, reason=serializer.validated_data["reason"])
        if isinstance(result, tool_services.ApprovalResult):
            tool = tool_queryset().get(pk=result.tool.pk)
            return Response(
                {
                    **ToolSerializer(tool).data,
                    "approvals_collected": result.approvals,
                    "approvals_required": result.required,
                    "complete": result.complete,
                }
            )
        return Response(ToolSerializer(tool_queryset().get(pk=result.pk)).data)

    def paginate_queryset(self, queryset):
        from .pagination import StandardPagination

        if self.action == "versions":
            self.paginator_instance = StandardPagination()
            return self.paginator_instance.paginate_queryset(queryset, self.request, view=self)
        return super().paginate_queryset(queryset)

    def get_paginated_response(self, data):
        if self.action == "versions":
            return self.paginator_instance.get_paginated_response(data)
        return super().get_paginated_response(data)


def _make_action(name: str):
    def handler(self, request: Request, slug: str) -> Response:
        return self._act(request, slug, name)

    handler.__name__ = name.replace("-", "_")
    handler.__doc__ = f"Lifecycle action `{name}` (403 for a role that may not act, 409 when not allowed now)."
    handler = extend_schema(
        request=ReasonSerializer,
        responses={
            200: ToolSerializer,
            403: OpenApiResponse(description="role may not act"),
            409: OpenApiResponse(description="not allowed now"),
        },
    )(handler)
    return action(detail=True, methods=["post"], url_path=name)(handler)


for _name in tool_services.ACTIONS:
    setattr(ToolViewSet, _name.replace("-", "_"), _make_action(_name))
