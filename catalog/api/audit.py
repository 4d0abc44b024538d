"""Audit log API: read-only, for auditors, platform engineers and admins; CSV export."""

from __future__ import annotations

import django_filters
from rest_framework import serializers, viewsets
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from ..models import AuditEvent
from .pagination import CreatedCursorPagination
from .parsers import PARSER_CLASSES
from .permissions import CanReadAudit
from .renderers import CSVRenderer

CSV_EXPORT_LIMIT = 100_000


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor_repr",
            "verb",
            "target_type",
            "target_id",
            "target_repr",
            "payload",
            "request_id",
        ]
        read_only_fields = fields


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor_repr")
    verb = django_filters.CharFilter(method="filter_verb", label="verb, or a prefix ending in '.' (e.g. tool.)")
    target_type = django_filters.CharFilter()
    target_id = django_filters.CharFilter()
    target = django_filters.CharFilter(field_name="target_repr")
    request_id = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields: list[str] = []

    def filter_verb(self, queryset, name, value):
        if value.endswith("."):
            return queryset.filter(verb__startswith=value)
        return queryset.filter(verb=value)


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Append-only audit log. There is no write route: events are written only by services."""

    parser_classes = PARSER_CLASSES
    serializer_class = AuditEventSerializer
    permission_classes = [CanReadAudit]
    filterset_class = AuditEventFilter
    pagination_class = CreatedCursorPagination
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]

    def get_queryset(self):
        return AuditEvent.objects.all().order_by("-created_at", "-id")

    def list(self, request: Request, *args, **kwargs) -> Response:
        if getattr(request.accepted_renderer, "format", "") == "csv":
            rows = self.filter_queryset(self.get_queryset())[:CSV_EXPORT_LIMIT]
            response = Response(AuditEventSerializer(rows, many=True).data)
            response["Content-Disposition"] = 'attachment; filename="goldpath-audit.csv"'
            return response
        return super().list(request, *args, **kwargs)
