"""AI tools API: catalog reads for everyone signed in; proposals, edits and lifecycle actions."""

from __future__ import annotations

import django_filters
from django.db.models import Prefetch
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
)
from ..selectors import search_tools, usable_tools
from ..services import tool_actions, tool_versions
from ..services import tools as tool_services
from ..services.tool_actions import ToolAction
from .base import GoldpathAPI
from .parsers import PARSER_CLASSES
from .serializers import StrictSerializerMixin
from .tool_version_serializers import (
    ToolVersionChangeSerializer,
    ToolVersionCreateSerializer,
    ToolVersionSerializer,
    VersionApprovalSerializer,
    version_queryset,
)

__all__ = ["StrictSerializerMixin", "ToolViewSet", "tool_queryset"]  # StrictSerializerMixin: older import path


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
            *AITool.EDITABLE_FIELDS,
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
        return tool_services.allowed_actions(tool)

    def get_latest_version(self, tool: AITool) -> str | None:
        versions = list(tool.versions.all())
        return versions[0].version if versions else None


class ToolProposeSerializer(StrictSerializerMixin, serializers.ModelSerializer):
    owner_team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), required=False)

    class Meta:
        model = AITool
        fields = ["slug", *AITool.EDITABLE_FIELDS]  # required: the fields the model says may not be blank


class ToolUpdateSerializer(ToolProposeSerializer):
    class Meta(ToolProposeSerializer.Meta):
        fields = list(AITool.EDITABLE_FIELDS)

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
        if value is None:
            return queryset
        usable = usable_tools(self.request.user)
        if value:
            return usable_tools(self.request.user, queryset)
        return queryset.exclude(pk__in=usable.values("pk"))

    def text_search(self, queryset, name, value):
        return search_tools(queryset, value)


def tool_queryset():
    return AITool.objects.select_related("owner_team", "proposed_by").prefetch_related(
        Prefetch("approvals", queryset=ToolApproval.objects.select_related("reviewer")),
        Prefetch("versions", queryset=ToolVersion.objects.order_by("-created_at", "-id")),
    )


class ToolViewSet(GoldpathAPI, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
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
        result = tool_services.tool_act(
            name=name, tool=tool, actor=request.user, reason=serializer.validated_data["reason"]
        )
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


def _make_action(row: ToolAction):
    """The API route of one row of the lifecycle table (catalog.services.tool_actions)."""

    def handler(self, request: Request, slug: str) -> Response:
        return self._act(request, slug, row.name)

    sources = ", ".join(sorted(str(s) for s in row.sources))
    handler.__name__ = row.key
    handler.__doc__ = (
        f"{row.label}: lifecycle action `{row.name}`, from {sources} (audited as `{row.verb}`)."
        + (" A reason is required." if row.reason_required else "")
    )
    handler = extend_schema(
        request=ReasonSerializer,
        responses={
            200: ToolSerializer,
            400: OpenApiResponse(description="a reason is required" if row.reason_required else "bad input"),
            403: OpenApiResponse(description="role may not act"),
            409: OpenApiResponse(description="not allowed now"),
        },
    )(handler)
    return action(detail=True, methods=["post"], url_path=row.name)(handler)


for _row in tool_actions.ACTIONS.values():
    setattr(ToolViewSet, _row.key, _make_action(_row))
