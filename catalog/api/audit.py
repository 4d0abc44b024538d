"""Audit log API: read-only, for auditors, platform engineers and admins; CSV export.

The filters, the query and the CSV are catalog.audit_log's, the same as the audit page's."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from .. import audit_log
from ..models import AuditEvent
from .base import GoldpathAPI
from .pagination import CreatedCursorPagination
from .parsers import PARSER_CLASSES
from .permissions import CanReadAudit
from .renderers import CSVRenderer

CSV_EXPORT_LIMIT = audit_log.CSV_LIMIT


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = list(audit_log.CSV_COLUMNS)
        read_only_fields = fields


FILTER_PARAMETERS = [
    OpenApiParameter("actor", str, description="username, agent:<run id> or system"),
    OpenApiParameter("verb", str, description="a verb, or a prefix ending in '.' (e.g. tool.)"),
    OpenApiParameter("target", str, description="the target's text, e.g. a tool's slug"),
    OpenApiParameter("target_type", str, description="e.g. aitool, team, accessgrant"),
    OpenApiParameter("target_id", str),
    OpenApiParameter("request_id", str),
    OpenApiParameter("since", OpenApiTypes.STR, description="YYYY-MM-DD or an ISO 8601 date-time (inclusive)"),
    OpenApiParameter(
        "until", OpenApiTypes.STR, description="YYYY-MM-DD (that whole day) or an ISO 8601 date-time (exclusive)"
    ),
]


@extend_schema(parameters=FILTER_PARAMETERS)
class AuditEventViewSet(GoldpathAPI, viewsets.ReadOnlyModelViewSet):
    """Append-only audit log. There is no write route: events are written only by services."""

    parser_classes = PARSER_CLASSES
    serializer_class = AuditEventSerializer
    permission_classes = [CanReadAudit]
    filter_backends: list = []
    pagination_class = CreatedCursorPagination
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return AuditEvent.objects.none()
        if self.action == "list":
            return audit_log.audit_events(self.request.user, audit_log.parse_filters(self.request.query_params))
        return audit_log.audit_events(self.request.user)

    def list(self, request: Request, *args, **kwargs) -> Response:
        if getattr(request.accepted_renderer, "format", "") == "csv":
            return audit_log.csv_response(self.get_queryset())
        return super().list(request, *args, **kwargs)
