"""Tool access API: access requests and grants (the simulator and the out-of-policy list: catalog.api.policy)."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from .. import permissions as perms
from .. import selectors
from ..models import AccessGrant, AccessRequest, AccessRequestStatus, AITool, DataClassification, GrantState, Team
from ..services import access as access_services
from ..services import grants as grant_services
from ..services.errors import NotPermitted
from .base import GoldpathAPI
from .parsers import PARSER_CLASSES
from .serializers import StrictSerializerMixin


class ToolSlugField(serializers.SlugRelatedField):
    def __init__(self, **kwargs):
        super().__init__(slug_field="slug", queryset=AITool.objects.all(), **kwargs)


class TeamSlugField(serializers.SlugRelatedField):
    def __init__(self, **kwargs):
        super().__init__(slug_field="slug", queryset=Team.objects.all(), **kwargs)


# --- access requests ---------------------------------------------------------------------------


class AccessRequestSerializer(serializers.ModelSerializer):
    tool = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    requester = serializers.SlugRelatedField(slug_field="username", read_only=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = AccessRequest
        fields = [
            "id",
            "tool",
            "team",
            "requester",
            "justification",
            "status",
            "decided_by",
            "decided_at",
            "reason",
            "created_at",
        ]
        read_only_fields = fields


class AccessRequestCreateSerializer(StrictSerializerMixin, serializers.Serializer):
    tool = ToolSlugField()
    team = TeamSlugField()
    justification = serializers.CharField(max_length=4000)


class GrantTermsSerializer(StrictSerializerMixin, serializers.Serializer):
    """A grant's terms, as approving a request or granting directly sets them (one definition for both)."""

    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    max_data_classification = serializers.ChoiceField(
        choices=DataClassification.choices, required=False, allow_blank=True, default=""
    )
    seats = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=1_000_000, default=None)
    budget_usd = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=0,
        required=False,
        allow_null=True,
        default=None,
        help_text="monthly model spend allowed through the gateway for this team and tool, USD; null: no budget",
    )


class ApproveSerializer(GrantTermsSerializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class RejectSerializer(StrictSerializerMixin, serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class AccessRequestFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=AccessRequestStatus.choices)
    team = django_filters.CharFilter(field_name="team__slug")
    tool = django_filters.CharFilter(field_name="tool__slug")
    requester = django_filters.CharFilter(field_name="requester__username")

    class Meta:
        model = AccessRequest
        fields: list[str] = []


class AccessRequestViewSet(GoldpathAPI,
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Requests for a team to use a tool. Developers create; platform engineers approve or reject."""

    parser_classes = PARSER_CLASSES
    serializer_class = AccessRequestSerializer
    filterset_class = AccessRequestFilter

    def get_queryset(self):
        return selectors.visible_access_requests(self.request.user).order_by("-created_at", "-id")

    @extend_schema(request=AccessRequestCreateSerializer, responses={201: AccessRequestSerializer})
    def create(self, request: Request) -> Response:
        serializer = AccessRequestCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        req = access_services.access_request_create(actor=request.user, **serializer.validated_data)
        return Response(AccessRequestSerializer(req).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ApproveSerializer, responses={200: AccessRequestSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        req = self.get_object()
        serializer = ApproveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        req = access_services.access_request_approve(
            access_request=req, actor=request.user, **serializer.validated_data
        )
        return Response(AccessRequestSerializer(req).data)

    @extend_schema(request=RejectSerializer, responses={200: AccessRequestSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str) -> Response:
        req = self.get_object()
        if not perms.can_manage_grants(request.user):
            raise NotPermitted("Only platform engineers decide access requests.")
        serializer = RejectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        req = access_services.access_request_reject(
            access_request=req, actor=request.user, reason=serializer.validated_data["reason"]
        )
        return Response(AccessRequestSerializer(req).data)


# --- grants ------------------------------------------------------------------------------------


class GrantSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    tool = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    granted_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    ended_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    effective_classification = serializers.CharField(read_only=True)
    in_force = serializers.SerializerMethodField()

    class Meta:
        model = AccessGrant
        fields = [
            "id",
            "team",
            "tool",
            "state",
            "in_force",
            "expires_at",
            "max_data_classification",
            "effective_classification",
            "seats",
            "budget_usd",
            "granted_by",
            "request",
            "created_at",
            "ended_at",
            "ended_by",
            "end_reason",
        ]
        read_only_fields = fields

    def get_in_force(self, grant: AccessGrant) -> bool:
        return grant.state == GrantState.ACTIVE and grant.permission_id is not None and not grant.is_expired()


class GrantCreateSerializer(GrantTermsSerializer):
    team = TeamSlugField()
    tool = ToolSlugField()


class GrantUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    budget_usd = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=0,
        allow_null=True,
        help_text="monthly model spend allowed through the gateway for this team and tool, USD; null: no budget",
    )


class GrantFilter(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug")
    tool = django_filters.CharFilter(field_name="tool__slug")
    state = django_filters.MultipleChoiceFilter(choices=GrantState.choices)

    class Meta:
        model = AccessGrant
        fields: list[str] = []


class GrantViewSet(GoldpathAPI, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Team x tool grants. Platform engineers grant (POST), change the monthly model budget (PATCH) and revoke
    (DELETE, `?reason=`)."""

    parser_classes = PARSER_CLASSES
    serializer_class = GrantSerializer
    filterset_class = GrantFilter

    def get_queryset(self):
        return selectors.visible_grants(self.request.user).order_by("-created_at", "-id")

    @extend_schema(request=GrantCreateSerializer, responses={201: GrantSerializer})
    def create(self, request: Request) -> Response:
        if not perms.can_manage_grants(request.user):
            raise NotPermitted("Only platform engineers grant tool access.")
        serializer = GrantCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        grant = grant_services.grant_create(actor=request.user, **serializer.validated_data)
        return Response(GrantSerializer(grant).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=GrantUpdateSerializer, responses={200: GrantSerializer})
    def partial_update(self, request: Request, pk: str) -> Response:
        grant = self.get_object()
        if not perms.can_manage_grants(request.user):
            raise NotPermitted("Only platform engineers change tool grants.")
        serializer = GrantUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        grant = grant_services.grant_update(grant=grant, actor=request.user, **serializer.validated_data)
        return Response(GrantSerializer(grant).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        grant = self.get_object()
        reason = request.query_params.get("reason") or (
            request.data.get("reason", "") if hasattr(request.data, "get") else ""
        )
        grant_services.grant_revoke(grant=grant, actor=request.user, reason=str(reason)[:2000])
        return Response(status=status.HTTP_204_NO_CONTENT)
