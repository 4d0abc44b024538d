"""Reading the audit log: one filter parser, one query, one CSV export and readable verb labels.

Shared by the audit page (catalog.views.audit) and `GET /api/v1/audit-events/` so the two answer the same question
the same way.

Filters (all optional, blank ones ignored): `actor` (username, `agent:<run>` or `system`), `verb` (exact, or a
prefix ending in `.` such as `tool.`), `target` (the target's text, e.g. a tool's slug), `target_type`,
`target_id`, `request_id`, `since` and `until` (a date `YYYY-MM-DD`, or an ISO 8601 date and time; a date
`until` includes that whole day, a date-time `until` is exclusive).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from . import permissions
from .models import AuditEvent
from .services.errors import InvalidInput, NotPermitted

CSV_LIMIT = 100_000
CSV_COLUMNS = (
    "id",
    "created_at",
    "actor_repr",
    "verb",
    "target_type",
    "target_id",
    "target_repr",
    "payload",
    "request_id",
)
_TEXT_LIMITS = {"actor": 150, "verb": 64, "target": 200, "target_type": 64, "target_id": 64, "request_id": 64}

# how a verb reads after the actor's name, e.g. on a tool's history ("bob approved it"); others are shown as
# "tool approved", from the verb itself
VERB_LABELS = {
    "tool.proposed": "proposed the tool",
    "tool.review_requested": "sent it to review",
    "tool.approval_recorded": "recorded an approval",
    "tool.approved": "approved it",
    "tool.rejected": "rejected it",
    "tool.deprecated": "deprecated it",
    "tool.retired": "retired it",
    "tool.banned": "banned it",
    "tool.reinstated": "reinstated it",
    "tool.review_expired": "(approval expired)",
    "tool.review_warning_sent": "(review due soon)",
    "tool.updated": "changed its details",
    "tool.used": "used it",
    "tool.use_denied": "was denied its use",
    "tool_version.proposed": "proposed version",
    "tool_version.changed": "changed version",
    "tool_version.approved": "approved version",
    "tool_version.rejected": "rejected version",
}


def verb_label(verb: str) -> str:
    """Readable text for a verb: `tool.approved` -> `approved it`; unknown verbs -> `team member added`."""
    verb = str(verb or "")
    return VERB_LABELS.get(verb) or verb.replace(".", " ").replace("_", " ")


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""
    verb: str = ""
    target: str = ""
    target_type: str = ""
    target_id: str = ""
    request_id: str = ""
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) not in ("", None) for f in fields(self))


def _moment(value: str, *, end_of_day: bool) -> dt.datetime | None:
    """A date (its start, or the start of the next day for `until`) or an ISO date-time; None if neither."""
    value = value.strip()
    try:
        day = parse_date(value) if len(value) == 10 else None
    except ValueError:  # well formed, not a date (2026-13-40)
        return None
    tz = timezone.get_current_timezone()
    if day is not None:
        return dt.datetime.combine(day + dt.timedelta(days=1 if end_of_day else 0), dt.time.min, tzinfo=tz)
    try:
        moment = parse_datetime(value.replace(" ", "+") if "T" in value else value)
    except ValueError:
        return None
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment, tz)
    return moment


def parse_filters(params: Mapping[str, Any]) -> AuditFilters:
    """Filters from query parameters (a page's GET or the API's query_params). Raises InvalidInput (400) with
    an error per bad field."""
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    for name, limit in _TEXT_LIMITS.items():
        value = str(params.get(name) or "").strip()
        if len(value) > limit:
            errors[name] = [f"At most {limit} characters."]
        values[name] = value
    for name in ("since", "until"):
        raw = str(params.get(name) or "").strip()
        if not raw:
            continue
        moment = _moment(raw, end_of_day=name == "until")
        if moment is None:
            errors[name] = ["Give a date (YYYY-MM-DD) or an ISO 8601 date and time."]
        values[name] = moment
    if errors:
        raise InvalidInput("Check the filters.", errors=errors)
    return AuditFilters(**values)


def audit_events(user: Any, filters: AuditFilters | None = None) -> QuerySet[AuditEvent]:
    """The events `user` may read (auditors, platform engineers, admins; NotPermitted otherwise), newest first."""
    if not permissions.can_read_audit(user):
        raise NotPermitted("The audit log is for auditors, platform engineers and admins.")
    qs = AuditEvent.objects.order_by("-created_at", "-id")
    f = filters or AuditFilters()
    exact = {
        "actor_repr": f.actor,
        "target_repr": f.target,
        "target_type": f.target_type,
        "target_id": f.target_id,
        "request_id": f.request_id,
    }
    qs = qs.filter(**{k: v for k, v in exact.items() if v})
    if f.verb:
        qs = qs.filter(verb__startswith=f.verb) if f.verb.endswith(".") else qs.filter(verb=f.verb)
    if f.since is not None:
        qs = qs.filter(created_at__gte=f.since)
    if f.until is not None:
        qs = qs.filter(created_at__lt=f.until)
    return qs


def known_verbs(limit: int = 200) -> list[str]:
    """Verbs present in the log, for the filter's suggestions."""
    return list(AuditEvent.objects.order_by("verb").values_list("verb", flat=True).distinct()[:limit])


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_rows(qs: QuerySet[AuditEvent]) -> Iterator[str]:
    """The CSV lines of at most CSV_LIMIT events, header first (payloads as sorted JSON)."""
    writer = csv.writer(_Echo())
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


def csv_response(qs: QuerySet[AuditEvent]) -> StreamingHttpResponse:
    """The export both the page's "Download CSV" and `?format=csv` answer with (streamed)."""
    response = StreamingHttpResponse(csv_rows(qs), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="goldpath-audit.csv"'
    return response
