"""Vendor API keys API: platform engineers set and delete a team's key for a tool.

The value is never shown again.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from .. import permissions as perms
from ..masking import masked_tail
from ..models import AITool, Team, VendorApiKey
from ..services.vendor_keys import vendor_api_key_delete, vendor_api_key_set
from .base import GoldpathAPI
from .parsers import PARSER_CLASSES
from .tools import StrictSerializerMixin


class VendorApiKeySerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    tool = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    value = serializers.SerializerMethodField()

    class Meta:
        model = VendorApiKey
        fields = ["id", "team", "tool", "env_var", "value", "last4", "created_at", "updated_at"]
        read_only_fields = fields

    def get_value(self, key) -> str:
        return masked_tail(key.last4)


class VendorApiKeyInputSerializer(StrictSerializerMixin, serializers.Serializer):
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all())
    tool = serializers.SlugRelatedField(slug_field="slug", queryset=AITool.objects.all())
    env_var = serializers.CharField(max_length=100)
    value = serializers.CharField(max_length=4000, write_only=True)


class VendorApiKeyViewSet(GoldpathAPI,
    mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Vendor API keys per team x tool (platform engineers): stored encrypted, never shown again."""

    parser_classes = PARSER_CLASSES

    serializer_class = VendorApiKeySerializer

    def get_queryset(self):
        qs = VendorApiKey.objects.select_related("team", "tool").order_by("team__slug", "tool__slug")
        return qs if perms.can_manage_vendor_keys(self.request.user) else qs.none()

    def list(self, request, *args, **kwargs):
        if not perms.can_manage_vendor_keys(request.user):
            raise PermissionDenied("Only platform engineers manage vendor API keys.")
        return super().list(request, *args, **kwargs)

    @extend_schema(request=VendorApiKeyInputSerializer, responses={201: VendorApiKeySerializer})
    def create(self, request: Request) -> Response:
        serializer = VendorApiKeyInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = vendor_api_key_set(actor=request.user, **serializer.validated_data)
        return Response(VendorApiKeySerializer(key).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, pk: str) -> Response:
        if not perms.can_manage_vendor_keys(request.user):
            raise PermissionDenied("Only platform engineers manage vendor API keys.")
        vendor_api_key_delete(key=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
