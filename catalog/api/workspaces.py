"""Templates, workspaces and builds API: thin views over catalog.services.templates/workspaces."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from ..conf import goldpath_settings
from ..masking import mask_parameters
from ..models import (
    AITool,
    BuildLogLine,
    TemplateVersion,
    Workspace,
    WorkspaceBuild,
    WorkspaceTemplate,
)
from ..selectors import visible_builds, visible_workspaces
from ..services import templates as template_services
from ..services import workspaces as ws_services
from ..services.errors import InvalidInput, NotPermitted
from .base import GoldpathAPI
from .parsers import PARSER_CLASSES
from .tools import StrictSerializerMixin


class TemplateVersionSerializer(serializers.ModelSerializer):
    parameters = serializers.SerializerMethodField()
    is_active = serializers.BooleanField(read_only=True)
    check_pending = serializers.SerializerMethodField()
    files = serializers.SerializerMethodField()

    class Meta:
        model = TemplateVersion
        fields = [
            "id",
            "number",
            "status",
            "is_active",
            "content_hash",
            "changelog",
            "parameters",
            "diagnostics",
            "check_pending",
            "files",
            "created_at",
            "published_at",
        ]
        read_only_fields = fields

    def get_check_pending(self, version: TemplateVersion) -> bool:
        return template_services.check_pending(version)

    def get_parameters(self, version: TemplateVersion) -> list[dict]:
        keys = ("name", "type", "default", "description", "sensitive", "required")
        return [{k: p.get(k) for k in keys} for p in version.form_parameters]

    def get_files(self, version: TemplateVersion) -> list[str]:
        return sorted(version.files)


class TemplateSerializer(serializers.ModelSerializer):
    owner_team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    tools = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    active_version = TemplateVersionSerializer(read_only=True)

    class Meta:
        model = WorkspaceTemplate
        fields = [
            "slug",
            "name",
            "description",
            "icon",
            "owner_team",
            "data_classification",
            "tools",
            "active_version",
            "created_at",
        ]
        read_only_fields = fields


class VersionUploadSerializer(StrictSerializerMixin, serializers.Serializer):
    archive = serializers.FileField()
    changelog = serializers.CharField(required=False, allow_blank=True, max_length=10_000, default="")


class TemplateViewSet(GoldpathAPI, viewsets.ReadOnlyModelViewSet):
    parser_classes = PARSER_CLASSES
    lookup_field = "slug"
    serializer_class = TemplateSerializer
    queryset = WorkspaceTemplate.objects.select_related("owner_team", "active_version").prefetch_related("tools")

    @action(
        detail=True,
        methods=["get", "post"],
        url_path="versions",
        parser_classes=PARSER_CLASSES,
    )
    def versions(self, request: Request, slug: str | None = None) -> Response:
        template = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(template.versions.all())
            return self.get_paginated_response(TemplateVersionSerializer(page, many=True).data)
        if not template_services.permissions.can_manage_templates(request.user):
            raise NotPermitted("Only platform engineers and admins push template versions.")
        data = VersionUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        files = template_services.files_from_archive(
            data.validated_data["archive"], max_bytes=goldpath_settings.TEMPLATE_UPLOAD_MAX_BYTES
        )
        version, created = template_services.template_version_create(
            template=template, actor=request.user, files=files, changelog=data.validated_data["changelog"]
        )
        return Response(
            TemplateVersionSerializer(version).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    def _version(self, slug: str, number: str) -> TemplateVersion:
        return get_object_or_404(TemplateVersion, template__slug=slug, number=number)

    @extend_schema(operation_id="v1_templates_version_detail")
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>\d+)")
    def version_detail(self, request: Request, slug: str | None = None, number: str | None = None) -> Response:
        return Response(TemplateVersionSerializer(self._version(slug, number)).data)

    @action(detail=True, methods=["post"], url_path=r"versions/(?P<number>\d+)/publish")
    def publish(self, request: Request, slug: str | None = None, number: str | None = None) -> Response:
        version = template_services.template_version_publish(version=self._version(slug, number), actor=request.user)
        return Response(TemplateVersionSerializer(version).data, status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"], url_path=r"versions/(?P<number>\d+)/validate")
    def validate(self, request: Request, slug: str | None = None, number: str | None = None) -> Response:
        """Validate a draft on a worker without publishing it; poll the version for its diagnostics."""
        version = template_services.template_version_validate(version=self._version(slug, number), actor=request.user)
        return Response(TemplateVersionSerializer(version).data, status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"], url_path=r"versions/(?P<number>\d+)/activate")
    def activate(self, request: Request, slug: str | None = None, number: str | None = None) -> Response:
        version = template_services.template_version_activate(version=self._version(slug, number), actor=request.user)
        return Response(TemplateVersionSerializer(version).data)


# --- workspaces ---------------------------------------------------------------------------------
class BuildSerializer(serializers.ModelSerializer):
    workspace = serializers.UUIDField(source="workspace_id", read_only=True)
    template_version = serializers.IntegerField(source="template_version.number", read_only=True)
    duration_s = serializers.FloatField(read_only=True)

    # the API keeps its names; the model says task_id and log_seq, like every job
    celery_task_id = serializers.CharField(source="task_id", read_only=True)
    log_count = serializers.IntegerField(source="log_seq", read_only=True)

    class Meta:
        model = WorkspaceBuild
        fields = [
            "id",
            "workspace",
            "number",
            "transition",
            "status",
            "template_version",
            "queued_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "duration_s",
            "celery_task_id",
            "progress",
            "stage",
            "outputs",
            "error",
            "cancel_requested",
            "log_count",
        ]
        read_only_fields = fields


class WorkspaceSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    template = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    template_version = serializers.IntegerField(source="template_version.number", read_only=True)
    tools = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    latest_build = serializers.SerializerMethodField()
    update_available = serializers.BooleanField(read_only=True)
    parameters = serializers.SerializerMethodField()

    class Meta:
        model = Workspace
        fields = [
            "id",
            "name",
            "owner",
            "team",
            "template",
            "template_version",
            "parameters",
            "tools",
            "classification",
            "status",
            "outputs",
            "ttl_hours",
            "last_activity_at",
            "agent_state",
            "agent_connected_at",
            "update_available",
            "latest_build",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_latest_build(self, ws: Workspace) -> dict | None:
        build = getattr(ws, "latest_build", None) or ws.builds.order_by("-number").first()
        return BuildSerializer(build).data if build else None

    def get_parameters(self, ws: Workspace) -> dict:
        return mask_parameters(ws.template_version.parameters, ws.parameters)


class WorkspaceCreateSerializer(StrictSerializerMixin, serializers.Serializer):
    name = serializers.CharField(max_length=63)
    template = serializers.SlugRelatedField(slug_field="slug", queryset=WorkspaceTemplate.objects.all())
    parameters = serializers.JSONField(required=False, default=dict)
    tools = serializers.ListField(child=serializers.CharField(max_length=50), required=False, default=list)
    ttl_hours = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=24 * 90)


class WorkspaceUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    parameters = serializers.JSONField(required=False, default=dict)


class WorkspaceViewSet(GoldpathAPI,
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    parser_classes = PARSER_CLASSES
    serializer_class = WorkspaceSerializer

    def get_queryset(self):
        qs = visible_workspaces(self.request.user).prefetch_related("tools")
        if self.action == "list":
            if self.request.query_params.get("mine") in ("1", "true"):
                qs = qs.filter(owner=self.request.user)
            if self.request.query_params.get("include_deleted") not in ("1", "true"):
                qs = qs.exclude(status="deleted")
        return qs

    def create(self, request: Request) -> Response:
        data = WorkspaceCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        workspace = ws_services.workspace_create(
            actor=request.user,
            name=v["name"],
            template=v["template"],
            parameters=v.get("parameters"),
            tools=v.get("tools"),
            ttl_hours=v.get("ttl_hours"),
        )
        return Response(WorkspaceSerializer(workspace).data, status=status.HTTP_201_CREATED)

    def _accepted(self, build: WorkspaceBuild) -> Response:
        workspace = Workspace.objects.get(pk=build.workspace_id)
        workspace.latest_build = build
        return Response(WorkspaceSerializer(workspace).data, status=status.HTTP_202_ACCEPTED)

    def destroy(self, request: Request, pk=None) -> Response:
        return self._accepted(ws_services.workspace_delete(workspace=self.get_object(), actor=request.user))

    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk=None) -> Response:
        return self._accepted(ws_services.workspace_start(workspace=self.get_object(), actor=request.user))

    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk=None) -> Response:
        return self._accepted(ws_services.workspace_stop(workspace=self.get_object(), actor=request.user))

    @action(detail=True, methods=["post"], url_path="update", url_name="update")
    def update_workspace(self, request: Request, pk=None) -> Response:
        data = WorkspaceUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # the given parameters are merged into the current ones and validated like at creation (400 with
        # field errors); this is how a failed workspace is fixed
        build = ws_services.workspace_update(
            workspace=self.get_object(), actor=request.user, parameters=data.validated_data.get("parameters")
        )
        return self._accepted(build)

    @action(detail=True, methods=["get"])
    def builds(self, request: Request, pk=None) -> Response:
        workspace = self.get_object()
        page = self.paginate_queryset(workspace.builds.select_related("template_version").order_by("-number"))
        return self.get_paginated_response(BuildSerializer(page, many=True).data)


class LogLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = BuildLogLine
        fields = ["seq", "stage", "level", "text", "at"]


class BuildViewSet(GoldpathAPI, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    parser_classes = PARSER_CLASSES
    serializer_class = BuildSerializer

    def get_queryset(self):
        return visible_builds(self.request.user)

    @action(detail=True, methods=["get"])
    def logs(self, request: Request, pk=None) -> Response:
        build = self.get_object()
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError as exc:
            raise InvalidInput("after must be an integer.", errors={"after": ["Must be an integer."]}) from exc
        try:
            limit = min(max(int(request.query_params.get("limit", "1000")), 1), 5000)
        except ValueError:
            limit = 1000
        lines = list(build.log_lines.filter(seq__gt=after).order_by("seq")[:limit])
        return Response(
            {
                "build": build.pk,
                "status": build.status,
                "progress": build.progress,
                "next": lines[-1].seq if lines else after,
                "lines": LogLineSerializer(lines, many=True).data,
            }
        )

    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        build = ws_services.build_cancel(build=self.get_object(), actor=request.user)
        return Response(BuildSerializer(build).data, status=status.HTTP_202_ACCEPTED)


__all__ = ["AITool", "BuildViewSet", "TemplateViewSet", "WorkspaceViewSet"]
