"""Policy API: the simulator (`POST authz/check/`) and the out-of-policy list and bulk action.

Thin: the same functions as the pages (catalog.policy_simulator, catalog.out_of_policy,
catalog.services.out_of_policy)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import permissions as perms
from ..models import DataClassification
from ..out_of_policy import out_of_policy_items
from ..policy_simulator import simulate
from ..services.errors import NotPermitted
from ..services.out_of_policy import MAX_ITEMS, out_of_policy_act
from .base import GoldpathAPI
from .pagination import StandardPagination
from .parsers import PARSER_CLASSES
from .serializers import StrictSerializerMixin

# --- the policy simulator -----------------------------------------------------------------------


class AuthzCheckSerializer(StrictSerializerMixin, serializers.Serializer):
    user = serializers.CharField(max_length=150, required=False, allow_blank=True, help_text="username; default: you")
    tool = serializers.CharField(max_length=50)
    classification = serializers.CharField(
        max_length=20,
        required=False,
        allow_blank=True,
        default=DataClassification.INTERNAL,
        help_text=f"one of {', '.join(DataClassification.values)} (default internal)",
    )
    template = serializers.CharField(
        max_length=100, required=False, allow_blank=True, allow_null=True, help_text="a golden path's slug"
    )


ReasonOut = inline_serializer("PolicyReason", {"code": serializers.CharField(), "message": serializers.CharField()})


class AuthzCheckView(GoldpathAPI, APIView):
    """The policy simulator: what would `decide` answer for this user, tool and context?

    Developers (and managers, for people outside their teams) may ask about themselves only (403);
    platform engineers, auditors and admins about anyone. Nothing is written.
    """

    parser_classes = PARSER_CLASSES

    @extend_schema(
        request=AuthzCheckSerializer,
        responses={
            200: inline_serializer(
                "PolicyDecision",
                {
                    "allowed": serializers.BooleanField(),
                    "reasons": ReasonOut,
                    "user": serializers.CharField(),
                    "tool": serializers.CharField(),
                    "classification": serializers.CharField(),
                    "template": serializers.CharField(allow_null=True),
                },
            ),
            400: OpenApiResponse(
                description="unknown user (for who may ask about anyone), tool, classification or template"
            ),
            403: OpenApiResponse(description="you may ask about yourself (or your managed teams' members) only"),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = AuthzCheckSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(simulate(request.user, **serializer.validated_data).as_dict())


# --- out of policy ------------------------------------------------------------------------------


class BulkItemSerializer(serializers.Serializer):
    kind = serializers.CharField(max_length=50)
    id = serializers.CharField(max_length=64)


class OutOfPolicyBulkSerializer(StrictSerializerMixin, serializers.Serializer):
    action = serializers.CharField(max_length=50)
    items = BulkItemSerializer(many=True, allow_empty=False, max_length=MAX_ITEMS)
    reason = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default="", help_text="required: recorded in the audit log"
    )


class OutOfPolicyView(GoldpathAPI, APIView):
    """Grants, workspaces and agent runs that use a tool their people may no longer use (what you may read)."""

    parser_classes = PARSER_CLASSES

    @extend_schema(
        parameters=[OpenApiParameter("kind", str, description="grant, workspace or agent_run")],
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        rows = [item.as_dict() for item in out_of_policy_items(request.user, request.query_params.get("kind"))]
        paginator = StandardPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(page)


class OutOfPolicyBulkView(GoldpathAPI, APIView):
    """Act on many out-of-policy objects at once (platform engineers), in one transaction: revoke grants, stop
    workspaces, cancel agent runs. A reason is required; an unknown kind or an action a kind does not offer is a
    400 with field errors and changes nothing."""

    parser_classes = PARSER_CLASSES

    @extend_schema(request=OutOfPolicyBulkSerializer, responses={200: dict})
    def post(self, request: Request) -> Response:
        if not perms.can_act_out_of_policy(request.user):  # a 403 before any look at the body
            raise NotPermitted("Only platform engineers act on out-of-policy objects.")
        serializer = OutOfPolicyBulkSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = out_of_policy_act(
            actor=request.user,
            action=data["action"],
            items=[(item["kind"], item["id"]) for item in data["items"]],
            reason=data["reason"],
        )
        return Response(result)
