"""What a report request asks for: its parameters (400 on bad ones) and the teams the user may see (403).

    params = parse_params(request.GET)          # 400 on a bad date or granularity
    scope = report_scope(user, params.team)     # 403 for developers and for a manager's other team

The API, the page and the command parse alike; the report calls `report_scope` itself.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from .. import permissions as perms
from ..models import Team
from ..services.errors import InvalidInput, NotPermitted

GRANULARITIES = ("day", "week", "month")
DEFAULT_WEEKS = 12
MAX_DAYS = 3 * 366
LAST_YEAR = 9998


@dataclass(frozen=True)
class ReportParams:
    date_from: dt.date
    date_to: dt.date
    granularity: str = "week"
    team: str | None = None
    tool: str | None = None


def _parse_date(value: str, field: str, errors: dict) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        errors[field] = [f"Give a date as YYYY-MM-DD (got {value!r})."]
        return None


def parse_params(query: Any, *, today: dt.date | None = None) -> ReportParams:
    """Read `from`, `to`, `team`, `tool`, `granularity`; InvalidInput (400) names each bad field."""
    today = today or timezone.now().date()
    errors: dict[str, list[str]] = {}
    granularity = (query.get("granularity") or "week").strip()
    if granularity not in GRANULARITIES:
        errors["granularity"] = [f"Choose one of: {', '.join(GRANULARITIES)}."]
    date_to = _parse_date(query["to"], "to", errors) if query.get("to") else today
    if query.get("from"):
        date_from = _parse_date(query["from"], "from", errors)
    else:
        # the last 12 whole weeks, this week to date included
        end = date_to or today
        date_from = end - dt.timedelta(days=end.weekday()) - dt.timedelta(weeks=DEFAULT_WEEKS - 1)
    if date_from and date_to:
        if date_from > date_to:
            errors["from"] = ["`from` must not be after `to`."]
        elif (date_to - date_from).days > MAX_DAYS:
            errors["to"] = [f"A report covers at most {MAX_DAYS} days."]
        elif date_to.year > LAST_YEAR:  # the period after the last one would be past the calendar's end
            errors["to"] = [f"Give a date before the year {LAST_YEAR + 1}."]
    team = (query.get("team") or "").strip() or None
    tool = (query.get("tool") or "").strip() or None
    if errors:
        raise InvalidInput("Bad report parameters.", errors=errors)
    return ReportParams(date_from=date_from, date_to=date_to, granularity=granularity, team=team, tool=tool)


def report_scope(user: Any, team: str | None) -> list[str] | None:
    """Team slugs the user may report on (None = every team); NotPermitted (403) otherwise."""
    if perms.can_read_everything(user):
        if team is not None and not Team.objects.filter(slug=team).exists():
            raise InvalidInput("Unknown team.", errors={"team": [f"No team {team!r}."]})
        return [team] if team else None
    if perms.is_manager(user):
        managed = sorted(Team.objects.filter(managers=user).values_list("slug", flat=True))
        if team is not None:
            if team not in managed:
                raise NotPermitted("Managers see reports only for the teams they manage.")
            return [team]
        return managed
    raise NotPermitted("Adoption reports are for managers, auditors, platform engineers and admins.")
