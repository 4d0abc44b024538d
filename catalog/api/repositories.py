"""Repositories API: everyone reads the repositories of their teams; platform engineers and admins change them.

Platform engineers and admins register, change and delete. The credential is write-only: answers carry only
`has_credential` and its last 4.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from ..models import DataClassification, Repository
from ..selectors import repositories_for
from ..services import repositories as repo_services
from ..services.errors import NotPermitted
from .base import GoldpathAPI
from .parsers import PARSER_CLASSES
from .tools import StrictSerializerMixin


class RepositorySerializer(serializers.ModelSerializer):
    teams = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    has_credential = serializers.BooleanField(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Repository
        fields = [
            "slug",
            "name",
            "url",
            "teams",
            "data_classification",
            "default_branch",
            "has_credential",
            "credential_last4",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class RepositoryWriteSerializer(StrictSerializerMixin, serializers.Serializer):
    """Types only; the service checks the values (URL rules, teams, branch name) and answers field errors."""

    slug = serializers.CharField(max_length=50)
    name = serializers.CharField(max_length=200)
    url = serializers.CharField(max_length=1000)
    teams = serializers.ListField(child=serializers.CharField(max_length=50), max_length=200)
    data_classification = serializers.ChoiceField(
        choices=DataClassification.choices, required=False, default=DataClassification.INTERNAL
    )
    default_branch = serializers.CharField(max_length=250, required=False, default="main")
    credential = serializers.CharField(
        max_length=repo_services.MAX_CREDENTIAL,
        required=False,
        allow_blank=True,
        allow_null=True,
        trim_whitespace=False,
        write_only=True,
        help_text="token or SSH private key, stored encrypted; on PATCH omit or null to keep, '' to clear",
    )


def _require_manager(request: Request) -> None:
    """Refuse before reading the body, so a developer's POST is a 403 whatever it holds."""
    if not repo_services.can_manage_repositories(request.user):
        raise NotPermitted("Only platform engineers and admins register and change repositories.")


class RepositoryViewSet(GoldpathAPI,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    parser_classes = PARSER_CLASSES
    lookup_field = "slug"
    lookup_value_regex = r"[a-z0-9-]+"
    serializer_class = RepositorySerializer

    def get_queryset(self):
        qs = repositories_for(self.request.user).select_related("created_by")
        team = self.request.query_params.get("team")
        if self.action == "list" and team:
            qs = qs.filter(teams__slug=team)
        return qs

    @extend_schema(parameters=[OpenApiParameter("team", str, description="only repositories shared with this team")])
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=RepositoryWriteSerializer, responses={201: RepositorySerializer})
    def create(self, request: Request) -> Response:
        _require_manager(request)
        serializer = RepositoryWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        repository = repo_services.repository_create(actor=request.user, **serializer.validated_data)
        return Response(self._out(repository), status=status.HTTP_201_CREATED)

    @extend_schema(request=RepositoryWriteSerializer, responses={200: RepositorySerializer})
    def partial_update(self, request: Request, slug: str) -> Response:
        repository = self.get_object()
        _require_manager(request)
        serializer = RepositoryWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        repository = repo_services.repository_update(
            repository=repository, actor=request.user, **serializer.validated_data
        )
        return Response(self._out(repository))

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request: Request, slug: str) -> Response:
        repository = self.get_object()
        _require_manager(request)
        repo_services.repository_delete(repository=repository, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _out(self, repository: Repository) -> dict:
        return RepositorySerializer(self.get_queryset().get(pk=repository.pk)).data
