"""The audit-log page for auditors, platform engineers and admins: filters, paging, CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import json

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from .. import permissions as perms
from ..forms import AuditFilterForm
from ..models import AuditEvent

PAGE_SIZE = 50
CSV_LIMIT = 100_000
CSV_COLUMNS = [
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


def _require_reader(request) -> None:
    if not perms.can_read_audit(request.user):
        raise PermissionDenied("The audit log is for auditors, platform engineers and admins.")


def _filtered(form: AuditFilterForm):
    qs = AuditEvent.objects.order_by("-created_at", "-id")
    if not form.is_valid():
        return qs.none()
    data = form.cleaned_data
    if data["actor"]:
        qs = qs.filter(actor_repr=data["actor"].strip())
    if data["verb"]:
        verb = data["verb"].strip()
        qs = qs.filter(verb__startswith=verb) if verb.endswith(".") else qs.filter(verb=verb)
    if data["target"]:
        qs = qs.filter(target_repr=data["target"].strip())
    tz = timezone.get_current_timezone()
    if data["since"]:
        qs = qs.filter(created_at__gte=dt.datetime.combine(data["since"], dt.time.min, tzinfo=tz))
    if data["until"]:
        qs = qs.filter(created_at__lt=dt.datetime.combine(data["until"] + dt.timedelta(days=1), dt.time.min, tzinfo=tz))
    return qs


@login_required
def audit_log(request):
    _require_reader(request)
    form = AuditFilterForm(request.GET or None)
    qs = _filtered(form) if request.GET else AuditEvent.objects.order_by("-created_at", "-id")
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    context = {
        "form": form if request.GET else AuditFilterForm(),
        "page": page,
        "query": params.urlencode(),
        "verbs": AuditEvent.objects.order_by("verb").values_list("verb", flat=True).distinct()[:200],
    }
    return render(
        request, "catalog/audit_log.html", context, status=400 if request.GET and not form.is_valid() else 200
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


@login_required
def audit_log_csv(request):
    """The filtered audit log as CSV (same columns as `/api/v1/audit-events/?format=csv`)."""
    _require_reader(request)
    form = AuditFilterForm(request.GET or None)
    qs = _filtered(form) if request.GET else AuditEvent.objects.order_by("-created_at", "-id")
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(CSV_COLUMNS)
        for e in qs[:CSV_LIMIT].iterator(chunk_size=2000):
            yield writer.writerow(
                [
                    e.id,
                    e.created_at.isoformat(),
                    e.actor_repr,
                    e.verb,
                    e.target_type,
                    e.target_id,
                    e.target_repr,
                    json.dumps(e.payload, sort_keys=True),
                    e.request_id,
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="goldpath-audit.csv"'
    return response
