"""Import vendor usage so one report covers tools used outside the portal.

Two formats, one rule: every row is validated first, bad rows are reported by line and nothing is
written; a good file is written in one transaction; importing the same file twice changes nothing
(each row has an idempotency key, derived from its content when the file gives none).

CSV (UTF-8, comma-separated, first line is the header; column order is free):

    occurred_at,kind,tool,team,user,template,duration_s,cost,outcome,key,reported_users,engaged_users,suggestions,acceptances

- `occurred_at` (required): ISO 8601 date or date-time (a date means midnight UTC; a time without an
  offset is UTC).
- `tool` (required): the tool's slug, known to the catalog or not (e.g. `cursor`, `windsurf`).
- `kind`: a usage kind (default `tool_used`).
- `team`: a portal team slug; blank means the user's team when the user is a portal user.
- `user`: a portal username or e-mail, or the vendor's user id (kept as is, counted as a distinct user).
- `template`, `outcome`: text; `duration_s`, `cost`, `reported_users`, `engaged_users`, `suggestions`,
  `acceptances`: non-negative numbers.
- `key`: the vendor's event id, if any (idempotency key within this source).

GitHub Copilot metrics JSON: the array `GET /orgs/{org}/copilot/metrics` (or
`/orgs/{org}/team/{team}/copilot/metrics`) returns: per day `date`, `total_active_users`,
`total_engaged_users`, and `copilot_ide_code_completions.editors[].models[].languages[]` with
`total_code_suggestions` and `total_code_acceptances`. Each day becomes one `tool_used` event for the
tool (default `github-copilot`) and team (optional) given with the upload, carrying the reported daily
active/engaged users and the summed suggestions and acceptances.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q

from . import audit, permissions, safejson
from .models import AITool, Team, UsageEvent, UsageKind
from .services.errors import InvalidInput, NotPermitted

SLUG_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?$")
SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,40}$")
CSV_COLUMNS = [
    "occurred_at",
    "kind",
    "tool",
    "team",
    "user",
    "template",
    "duration_s",
    "cost",
    "outcome",
    "key",
    "reported_users",
    "engaged_users",
    "suggestions",
    "acceptances",
]
INT_COLUMNS = ("reported_users", "engaged_users", "suggestions", "acceptances")
MAX_ROWS = 200_000
MAX_ERRORS = 200


@dataclass
class ImportResult:
    source: str
    format: str
    rows: int = 0
    created: int = 0
    duplicates: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "rows": self.rows,
            "created": self.created,
            "duplicates": self.duplicates,
        }


class _Lookup:
    """Portal users and teams named in a file, fetched once."""

    def __init__(self) -> None:
        self.teams = {t.slug: t for t in Team.objects.all()}
        self.tools = {t.slug: t for t in AITool.objects.all()}
        self._users: dict[str, Any] = {}
        self._user_team: dict[int, Team | None] = {}

    def load_users(self, refs: set[str]) -> None:
        refs = {r for r in refs if r}
        if not refs:
            return
        User = get_user_model()
        for user in User.objects.filter(Q(username__in=refs) | Q(email__in=refs)):
            self._users[user.username] = user
            if user.email:
                self._users.setdefault(user.email, user)

    def user(self, ref: str) -> Any:
        return self._users.get(ref)

    def team_of(self, user: Any) -> Team | None:
        if user.pk not in self._user_team:
            self._user_team[user.pk] = Team.objects.filter(group__user=user).order_by("slug").first()
        return self._user_team[user.pk]


def _parse_at(value: str) -> dt.datetime:
    value = value.strip()
    if len(value) == 10:
        return dt.datetime.combine(dt.date.fromisoformat(value), dt.time.min, tzinfo=dt.UTC)
    at = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def _row_key(source: str, parts: list[Any]) -> str:
    digest = hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode()).hexdigest()[:40]
    return f"{source}:{digest}"


def _event(
    lookup: _Lookup, *, source: str, key: str, at: dt.datetime, kind: str, tool: str, team: str, user: str, **rest
):
    user_obj = lookup.user(user) if user else None
    team_obj = lookup.teams.get(team) if team else (lookup.team_of(user_obj) if user_obj else None)
    return UsageEvent(
        at=at,
        day=at.astimezone(dt.UTC).date(),
        kind=kind,
        user=user_obj,
        user_ref=(user_obj.username if user_obj else user)[:150],
        team=team_obj,
        team_slug=team_obj.slug if team_obj else team,
        tool=lookup.tools.get(tool),
        tool_slug=tool,
        source=source,
        key=key[:200],
        **rest,
    )


def parse_csv(text: str, *, source: str, lookup: _Lookup) -> tuple[list[UsageEvent], list[dict[str, Any]], int]:
    errors: list[dict[str, Any]] = []
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        return [], [{"line": 1, "field": None, "message": "The file is empty; the first line must be the header."}], 0
    unknown = [h for h in header if h not in CSV_COLUMNS]
    missing = [h for h in ("occurred_at", "tool") if h not in header]
    if unknown or missing:
        msg = []
        if unknown:
            msg.append(f"unknown columns: {', '.join(unknown)}")
        if missing:
            msg.append(f"missing columns: {', '.join(missing)}")
        return [], [{"line": 1, "field": None, "message": "; ".join(msg) + f". Columns: {', '.join(CSV_COLUMNS)}."}], 0
    reader.fieldnames = header
    raw_rows = list(reader)
    if len(raw_rows) > MAX_ROWS:
        return [], [{"line": None, "field": None, "message": f"At most {MAX_ROWS} rows per file."}], len(raw_rows)
    lookup.load_users({(r.get("user") or "").strip() for r in raw_rows})
    events = []
    for index, raw in enumerate(raw_rows):
        line = index + 2  # the header is line 1
        row = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        if None in raw:
            errors.append({"line": line, "field": None, "message": "More values than header columns."})
            continue
        row_errors = []

        def bad(field_name: str, message: str) -> None:
            row_errors.append({"line": line, "field": field_name, "message": message})  # noqa: B023

        at = None
        try:
            at = _parse_at(row.get("occurred_at", ""))
        except ValueError:
            bad("occurred_at", "Give an ISO 8601 date or date-time.")
        kind = row.get("kind") or UsageKind.TOOL_USED
        if kind not in UsageKind.values:
            bad("kind", f"Unknown kind {kind!r}.")
        tool = row.get("tool", "")
        if not SLUG_RE.match(tool):
            bad("tool", "Give the tool's slug (lowercase letters, digits, hyphens).")
        team = row.get("team", "")
        if team and team not in lookup.teams:
            bad("team", f"No team {team!r}.")
        numbers: dict[str, Any] = {}
        for name in ("duration_s", "cost", *INT_COLUMNS):
            value = row.get(name, "")
            if value == "":
                continue
            try:
                number = Decimal(value)
                if not number.is_finite() or number < 0:
                    raise InvalidOperation
                if name in INT_COLUMNS:
                    if number != number.to_integral_value():
                        raise InvalidOperation
                    numbers[name] = int(number)
                else:
                    numbers[name] = float(number) if name == "duration_s" else number
            except InvalidOperation:
                bad(name, "Give a non-negative number" + (" (whole)." if name in INT_COLUMNS else "."))
        if row_errors:
            errors.extend(row_errors)
            if len(errors) >= MAX_ERRORS:
                break
            continue
        user = row.get("user", "")
        given = row.get("key", "")
        key = (
            f"{source}:{given}"
            if given
            else _row_key(
                source, [at.isoformat(), kind, tool, team, user, row.get("template"), *sorted(numbers.items())]
            )
        )
        events.append(
            _event(
                lookup,
                source=source,
                key=key,
                at=at,
                kind=kind,
                tool=tool,
                team=team,
                user=user,
                template_slug=row.get("template", "")[:50],
                outcome=row.get("outcome", "")[:32],
                **numbers,
            )
        )
    return events, errors, len(raw_rows)


def _sum_completions(day: dict[str, Any]) -> tuple[int, int]:
    completions = day.get("copilot_ide_code_completions") or {}
    suggestions = acceptances = 0
    for editor in completions.get("editors") or []:
        for model in editor.get("models") or []:
            languages = model.get("languages") or []
            if languages:
                for lang in languages:
                    suggestions += int(lang.get("total_code_suggestions") or 0)
                    acceptances += int(lang.get("total_code_acceptances") or 0)
            else:
                suggestions += int(model.get("total_code_suggestions") or 0)
                acceptances += int(model.get("total_code_acceptances") or 0)
    return suggestions, acceptances


def parse_copilot(
    text: str, *, source: str, lookup: _Lookup, tool: str, team: str
) -> tuple[list[UsageEvent], list[dict[str, Any]], int]:
    try:
        data = safejson.loads(text)
    except safejson.JSONTooDeep as exc:
        return [], [{"line": 1, "field": None, "message": f"Not a metrics file: {exc}."}], 0
    except json.JSONDecodeError as exc:
        return [], [{"line": exc.lineno, "field": None, "message": f"Not valid JSON: {exc.msg}."}], 0
    except ValueError as exc:
        return [], [{"line": 1, "field": None, "message": f"Not valid JSON: {exc}."}], 0
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        return [], [{"line": 1, "field": None, "message": "Expected the metrics API's array of days."}], 0
    errors: list[dict[str, Any]] = []
    events = []
    for index, day in enumerate(data):
        item = index + 1
        if not isinstance(day, dict):
            errors.append({"line": item, "field": None, "message": "Each item must be an object for one day."})
            continue
        row_errors = []
        try:
            date = dt.date.fromisoformat(str(day.get("date", "")))
        except ValueError:
            row_errors.append({"line": item, "field": "date", "message": "Give `date` as YYYY-MM-DD."})
        counts = {}
        for name in ("total_active_users", "total_engaged_users"):
            value = day.get(name, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                row_errors.append({"line": item, "field": name, "message": "Give a non-negative whole number."})
            counts[name] = value
        try:
            suggestions, acceptances = _sum_completions(day)
        except (TypeError, ValueError, AttributeError):
            row_errors.append(
                {"line": item, "field": "copilot_ide_code_completions", "message": "Unreadable completions breakdown."}
            )
        if row_errors:
            errors.extend(row_errors)
            continue
        at = dt.datetime.combine(date, dt.time.min, tzinfo=dt.UTC)
        events.append(
            _event(
                lookup,
                source=source,
                key=f"{source}:copilot:{team or '-'}:{tool}:{date.isoformat()}",
                at=at,
                kind=UsageKind.TOOL_USED,
                tool=tool,
                team=team,
                user="",
                reported_users=counts["total_active_users"],
                engaged_users=counts["total_engaged_users"],
                suggestions=suggestions,
                acceptances=acceptances,
            )
        )
    return events, errors, len(data)


def detect_format(text: str, declared: str = "") -> str:
    declared = (declared or "").lower()
    if declared in ("csv", "copilot"):
        return declared
    if "json" in declared:
        return "copilot"
    return "copilot" if text.lstrip()[:1] in ("[", "{") else "csv"


def usage_import(
    *, actor: Any, text: str, fmt: str = "", name: str = "", tool: str = "", team: str = ""
) -> ImportResult:
    """Validate the whole file, then write it in one transaction (or nothing, with the bad lines)."""
    if not permissions.can_import_usage(actor):
        raise NotPermitted("Only platform engineers and admins import usage.")
    fmt = detect_format(text, fmt)
    name = (name or fmt).strip().lower()
    errors: dict[str, list[str]] = {}
    if not SOURCE_RE.match(name):
        errors["source"] = ["Name the source with letters, digits, '.', '_' or '-' (e.g. cursor-admin)."]
    tool = (tool or ("github-copilot" if fmt == "copilot" else "")).strip()
    if fmt == "copilot" and not SLUG_RE.match(tool):
        errors["tool"] = ["Give the tool's slug."]
    team = (team or "").strip()
    lookup = _Lookup()
    if team and team not in lookup.teams:
        errors["team"] = [f"No team {team!r}."]
    if errors:
        raise InvalidInput("Bad import parameters.", errors=errors)
    source = f"import:{name}"
    if fmt == "copilot":
        events, row_errors, count = parse_copilot(text, source=source, lookup=lookup, tool=tool, team=team)
    else:
        events, row_errors, count = parse_csv(text, source=source, lookup=lookup)
    result = ImportResult(source=source, format=fmt, rows=count)
    if row_errors:
        lines = sorted({e["line"] for e in row_errors if e["line"] is not None})
        raise InvalidInput(
            f"{len(lines) or 1} bad row(s); nothing was imported.",
            errors={"lines": row_errors[:MAX_ERRORS]},
        )
    with transaction.atomic():
        unique: dict[str, UsageEvent] = {}
        for event in events:
            unique.setdefault(event.key, event)
        keys = list(unique)
        existing: set[str] = set()
        for i in range(0, len(keys), 1000):
            existing |= set(UsageEvent.objects.filter(key__in=keys[i : i + 1000]).values_list("key", flat=True))
        new = [e for k, e in unique.items() if k not in existing]
        UsageEvent.objects.bulk_create(new, batch_size=1000, ignore_conflicts=True)
        result.created = len(new)
        result.duplicates = len(events) - len(new)
        audit.record(
            actor=actor,
            verb="usage.imported",
            target_type="usage_import",
            target_id=source,
            target_repr=source,
            payload=result.as_dict(),
        )
    return result
