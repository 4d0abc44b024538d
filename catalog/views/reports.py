"""The adoption dashboard: the same report the API returns, with charts (Chart.js, vendored) and filters."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from .. import permissions as perms
from ..models import AITool, Team
from ..reports.adoption import adoption_report
from ..reports.params import parse_params
from ..services.errors import InvalidInput, NotPermitted
from .rendering import render


@login_required
def adoption(request):
    if not perms.can_read_reports(request.user):
        raise PermissionDenied("Adoption reports are for managers, auditors, platform engineers and admins.")
    errors = {}
    try:
        params = parse_params(request.GET)
    except InvalidInput as exc:
        errors = exc.errors
        params = parse_params({})
    try:
        report = adoption_report(request.user, params)
    except NotPermitted as exc:
        raise PermissionDenied(exc.message) from exc
    except InvalidInput as exc:
        errors = exc.errors
        params = parse_params({k: v for k, v in request.GET.items() if k not in exc.errors})
        report = adoption_report(request.user, params)
    if perms.can_read_everything(request.user):
        teams = list(Team.objects.order_by("slug").values_list("slug", flat=True))
    else:
        teams = list(Team.objects.filter(managers=request.user).order_by("slug").values_list("slug", flat=True))
    query = {
        "from": params.date_from.isoformat(),
        "to": params.date_to.isoformat(),
        "granularity": params.granularity,
        **({"team": params.team} if params.team else {}),
        **({"tool": params.tool} if params.tool else {}),
    }
    partial = [p for p in report["periods"] if p["partial"]]
    chart = {
        "periods": [p["period_start"] for p in report["periods"]],
        "partial": [p["partial"] for p in report["periods"]],
        "tool_series": report["tool_series"],
        "team_series": report["team_series"],
        "funnel": report["funnel"],
    }
    return render(
        request,
        "catalog/adoption_report.html",
        {
            "report": report,
            "params": params,
            "errors": errors,
            "teams": teams,
            "tools": list(AITool.objects.order_by("slug").values_list("slug", flat=True)),
            "granularities": ["day", "week", "month"],
            "csv_url": reverse("goldpath:api:report-adoption") + "?" + urlencode({**query, "format": "csv"}),
            "json_url": reverse("goldpath:api:report-adoption") + "?" + urlencode(query),
            "chart": chart,
            "partial_periods": partial,
            "partial_starts": [p["period_start"] for p in partial],
            "today": timezone.now().astimezone(dt.UTC).date().isoformat(),  # the report's "today" (UTC)
        },
    )
