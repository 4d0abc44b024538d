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

from ..models import AITool, DataClassification, Team, ToolApproval, ToolKind, ToolStatus, ToolVersion
from ..runners.egress_policy import MAX_PATTERNS
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


class ToolVersionSerializer(StrictSerializerMixin, serializers.ModelSerializer):
    launch_command = serializers.ListField(
        child=serializers.CharField(max_length=500, allow_blank=False),
        min_length=1,
        max_length=64,
        help_text="argv template; one element contains {prompt}. Never a shell string.",
    )
    models = serializers.ListField(
        source="model_names", child=serializers.CharField(max_length=100), required=False, max_length=50
    )
    egress_hosts = serializers.ListField(
        child=serializers.CharField(max_length=300),
        required=False,
        max_length=MAX_PATTERNS,
        help_text="Hosts agent runs may reach through the egress proxy when their group allows it: `host`, "
        "`*.suffix`, IP literals, each with an optional `:port` (without one: ports 80 and 443). Platform "
        "engineers and admins only.",
    )

    class Meta:
        model = ToolVersion
        fields = [
            "id",
            "version",
            "release_notes_url",
            "launch_command",
            "models",
            "egress_hosts",
            "per_use_cost",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]
        validators = []  # uniqueness per tool is checked by the service (the tool is not an input)


class ToolVersionUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    egress_hosts = serializers.ListField(
        child=serializers.CharField(max_length=300), max_length=MAX_PATTERNS, allow_empty=True
    )


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
    @extend_schema(methods=["POST"], request=ToolVersionSerializer, responses={201: ToolVersionSerializer})
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def versions(self, request: Request, slug: str) -> Response:
        tool = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(tool.versions.order_by("-created_at", "-id"))
            data = ToolVersionSerializer(page, many=True).data
            return self.get_paginated_response(data)
        serializer = ToolVersionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = tool_versions.tool_version_add(tool=tool, actor=request.user, data=serializer.validated_data)
        return Response(ToolVersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=ToolVersionUpdateSerializer,
        responses={
            200: ToolVersionSerializer,
            400: OpenApiResponse(description="bad host pattern"),
            403: OpenApiResponse(description="only platform engineers and admins"),
        },
    )
    @action(detail=True, methods=["patch"], url_path=r"versions/(?P<version>.+)", url_name="version-detail")
    def version_update(self, request: Request, slug: str, version: str) -> Response:
        """Change a version's egress hosts (audited with before and after)."""
        tool = self.get_object()
        target = get_object_or_404(ToolVersion, tool=tool, version=version)
        serializer = ToolVersionUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        updated = tool_versions.tool_version_update(
            version=target, actor=request.user, egress_hosts=serializer.validated_data["egress_hosts"]
        )
        return Response(ToolVersionSerializer(updated).data)

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
