"""The audit-log page for auditors, platform engineers and admins: filters, paging, CSV export.

The filters, the query and the CSV are catalog.audit_log's, the same as `GET /api/v1/audit-events/`."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator

from .. import audit_log as log
from ..services.errors import InvalidInput, NotPermitted
from .rendering import render

PAGE_SIZE = 50
FILTER_LABELS = {"actor": "Actor", "verb": "Verb", "target": "Target", "since": "From", "until": "To"}


def _events(request):
    """(events, filter errors): a bad filter shows no events and its field errors (400)."""
    try:
        filters = log.parse_filters(request.GET)
        errors: dict = {}
    except InvalidInput as exc:
        filters, errors = log.AuditFilters(), exc.errors
    try:
        events = log.audit_events(request.user, filters)
    except NotPermitted as exc:
        raise PermissionDenied(exc.message) from exc
    return (events.none() if errors else events), errors


@login_required
def audit_log(request):
    events, errors = _events(request)
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    context = {
        "filters": {name: request.GET.get(name, "") for name in FILTER_LABELS},
        "errors": [(FILTER_LABELS.get(name, name), messages) for name, messages in errors.items()],
        "page": page,
        "query": params.urlencode(),
        "verbs": log.known_verbs(),
    }
    return render(request, "catalog/audit_log.html", context, status=400 if errors else 200)


@login_required
def audit_log_csv(request):
    """The filtered audit log as CSV (the same export as `/api/v1/audit-events/?format=csv`)."""
    events, errors = _events(request)
    if errors:
        return audit_log(request)
    return log.csv_response(events)

