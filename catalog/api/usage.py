"""Usage events API (read for platform/auditor/admin; import for platform/admin) and the adoption report."""

from __future__ import annotations

import csv
import io

import django_filters
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import permissions as perms
from ..models import UsageEvent
from ..reports.adoption import adoption_report, report_json
from ..reports.params import parse_params
from ..reports.rowsql import ROW_FIELDS
from ..services.errors import InvalidInput
from ..usage_import import usage_import
from .base import GoldpathAPI
from .parsers import PARSER_CLASSES
from .renderers import CSVRenderer

MAX_UPLOAD_BYTES = 20 * 1024 * 1024


class CanReadUsage(BasePermission):
    message = "Only auditors, platform engineers and admins read raw usage events."

    def has_permission(self, request, view) -> bool:
        if getattr(view, "action", None) == "import_events":
            return perms.role_of(request.user) is not None  # the service decides (403 for others)
        return perms.can_read_usage_events(request.user)


class RawBodyParser(BaseParser):
    """A CSV file posted as the body, as bytes; at most one byte over the upload limit is read."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read(MAX_UPLOAD_BYTES + 1) if stream is not None else b""


class RawJSONBodyParser(RawBodyParser):
    """A Copilot metrics file posted as the body (parsed, with a depth limit, by the import)."""

    media_type = "application/json"


class RawTextBodyParser(RawBodyParser):
    media_type = "text/plain"


class RawOctetBodyParser(RawBodyParser):
    media_type = "application/octet-stream"


# multipart (field `file`) or one of these bodies; anything else (a form-encoded body) is a 415
IMPORT_PARSERS = [MultiPartParser, RawBodyParser, RawJSONBodyParser, RawTextBodyParser, RawOctetBodyParser]


class UsageEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = UsageEvent
        fields = [
            "id",
            "at",
            "kind",
            "user_ref",
            "team_slug",
            "tool_slug",
            "template_slug",
            "outcome",
            "duration_s",
            "cost",
            "reported_users",
            "engaged_users",
            "suggestions",
            "acceptances",
            "source",
            "key",
            "ingested_at",
        ]
        read_only_fields = fields


class UsageEventFilter(django_filters.FilterSet):
    kind = django_filters.CharFilter()
    team = django_filters.CharFilter(field_name="team_slug")
    tool = django_filters.CharFilter(field_name="tool_slug")
    user = django_filters.CharFilter(field_name="user_ref")
    source = django_filters.CharFilter(method="filter_source", label="source, or a prefix ending in ':' (import:)")
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = UsageEvent
        fields: list[str] = []

    def filter_source(self, queryset, name, value):
        return queryset.filter(source__startswith=value) if value.endswith(":") else queryset.filter(source=value)


class IdCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("-id",)


class ImportResultSerializer(serializers.Serializer):
    source = serializers.CharField()
    format = serializers.CharField()
    rows = serializers.IntegerField()
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()


class UsageEventViewSet(GoldpathAPI, viewsets.ReadOnlyModelViewSet):
    """Append-only usage events: written by services and imports, never through this API."""

    parser_classes = PARSER_CLASSES
    serializer_class = UsageEventSerializer
    permission_classes = [CanReadUsage]
    filterset_class = UsageEventFilter
    pagination_class = IdCursorPagination

    def get_queryset(self):
        return UsageEvent.objects.all().order_by("-id")

    @extend_schema(
        summary="Import vendor usage (CSV or GitHub Copilot metrics JSON)",
        description=(
            "Upload a file as multipart field `file` (or as the raw body). CSV header: "
            "`occurred_at,kind,tool,team,user,template,duration_s,cost,outcome,key,reported_users,engaged_users,"
            "suggestions,acceptances` (occurred_at and tool required). Copilot: the array the metrics API "
            "returns; give `tool` (default github-copilot) and optionally `team`. Bad rows answer 400 with "
            "`lines` and nothing is imported; the same file twice changes nothing. A raw body must be "
            "text/csv, application/json, text/plain or application/octet-stream (others: 415)."
        ),
        parameters=[
            OpenApiParameter("format_hint", str, description="csv or copilot (detected when omitted)"),
            OpenApiParameter("source", str, description="source name: events get source import:<name>"),
            OpenApiParameter("tool", str, description="tool slug for Copilot metrics (default github-copilot)"),
            OpenApiParameter("team", str, description="team slug for team-level Copilot metrics"),
        ],
        request={
            "multipart/form-data": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
        },
        responses={201: ImportResultSerializer},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        parser_classes=IMPORT_PARSERS,
    )
    def import_events(self, request: Request) -> Response:
        try:
            form = request.POST
        except UnsupportedMediaType:
            raise UnsupportedMediaType(
                request.content_type,
                detail=f"Unsupported media type {request.content_type!r}: post the file as multipart field `file`, "
                "or as a text/csv or application/json body.",
            ) from None
        params = {**request.query_params.dict(), **{k: v for k, v in form.items() if k != "file"}}
        upload = request.FILES.get("file")
        if upload is not None:
            if upload.size > MAX_UPLOAD_BYTES:
                raise InvalidInput("File too large.", errors={"file": ["At most 20 MB."]})
            raw = upload.read()
            declared = params.get("format_hint") or ("copilot" if upload.name.lower().endswith(".json") else "")
        else:
            raw = request.data if isinstance(request.data, bytes) else b""
            if len(raw) > MAX_UPLOAD_BYTES:
                raise InvalidInput("File too large.", errors={"file": ["At most 20 MB."]})
            declared = params.get("format_hint") or request.content_type or ""
        if not raw or not raw.strip():
            raise InvalidInput("No file.", errors={"file": ["Upload a CSV or Copilot metrics JSON file."]})
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInput("Not UTF-8.", errors={"file": ["The file must be UTF-8 text."]}) from exc
        result = usage_import(
            actor=request.user,
            text=text,
            fmt=declared if declared in ("csv", "copilot") else ("copilot" if "json" in declared else ""),
            name=params.get("source", ""),
            tool=params.get("tool", ""),
            team=params.get("team", ""),
        )
        return Response(result.as_dict(), status=201 if result.created else 200)


def _csv_value(value) -> object:
    """Numbers as the JSON has them, but never in exponent notation (a model cost of 8e-05 is 0.000080)."""
    if value is None:
        return ""
    if isinstance(value, float) and "e" in repr(value):
        return f"{value:.6f}"
    return value


def rows_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROW_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in ROW_FIELDS})
    return buffer.getvalue()


class AdoptionReportView(GoldpathAPI, APIView):
    """Adoption per period x team x tool, from the rollups; `?format=csv` gives the same rows."""

    parser_classes = PARSER_CLASSES
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]

    @extend_schema(
        summary="Adoption report",
        parameters=[
            OpenApiParameter(
                "from", str, description="first day, YYYY-MM-DD (default: Monday 11 weeks before `to`: 12 whole weeks)"
            ),
            OpenApiParameter("to", str, description="last day, YYYY-MM-DD (default: today)"),
            OpenApiParameter("team", str),
            OpenApiParameter("tool", str),
            OpenApiParameter("granularity", str, enum=["day", "week", "month"]),
        ],
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        params = parse_params(request.query_params)
        report = adoption_report(request.user, params)
        if getattr(request.accepted_renderer, "format", "") == "csv":
            response = HttpResponse(rows_csv(report["rows"]), content_type="text/csv; charset=utf-8")
            name = f"goldpath-adoption-{params.date_from}-{params.date_to}.csv"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
        if getattr(request.accepted_renderer, "format", "") == "json":
            # the rows arrive as JSON text from the database and go out as they are
            return HttpResponse(report_json(report), content_type="application/json")
        return Response({**report, "rows": list(report["rows"])})
