"""The adoption report: per period x team x tool metrics, read from the rollups only.

    params = parse_params(request.GET)          # 400 on a bad date or granularity
    report = adoption_report(user, params)      # 403 for developers and for a manager's other team

Definitions (also on the page and in the API docs):
- `active_users`: distinct users with any use (workspace, build, tool enabled, agent run, accepted result,
  vendor usage) in the period, counted from per user per day rows, never summed from days. Vendor imports
  that carry no user ids (GitHub Copilot metrics) report a daily count; their period value is the peak day
  (a lower bound) and `active_users` is the larger of the two.
- `adoption_rate`: active users / current team members.
- `build_success_rate`: succeeded / (succeeded + failed) builds.
- `median_time_to_ready_s`: median duration of succeeded start builds (from a histogram: 1 s resolution
  under a minute, 5 s to 5 min, 30 s to 30 min).
- `agent_acceptance_rate`: accepted agent results / finished agent runs.
- `estimated_cost`: seats (`AccessGrant.seats` x the tool's `monthly_price_per_seat`, prorated per day
  the grant was active in the period, a month being 365/12 days) plus per-use cost
  (`ToolVersion.per_use_cost`, stored on each event).
- `input_tokens`, `output_tokens`, `model_cost`: what the model calls through Goldpath's gateway used and
  cost (its `model_call` events; input counts cached input too; dollars to 6 places). Model spend is its
  own column, not part of `estimated_cost`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils import timezone

from .. import permissions as perms
from ..models import (
    AccessGrant,
    AccessRequest,
    AccessRequestStatus,
    AITool,
    Team,
    UsageDaily,
    UsageFirstUse,
    UsagePeriod,
    UsagePeriodBucket,
    UsagePeriodTotal,
    UsagePeriodUsers,
    UsageReadyBucket,
    UsageUserDay,
)
from ..models.teams import membership_table
from ..services.errors import InvalidInput, NotPermitted
from .funnel import funnel_stages, period_partial
from .rollup import PERIOD_COLUMNS
from .rowsql import (  # noqa: F401 (ROW_FIELDS re-exported: the API and the command name the columns from here)
    ROW_FIELDS,
    TOTAL_FIELDS,
    Dialect,
    median_sql,
    object_sql,
    prorated_seats_sql,
    row_json_sql,
    static_fragment_sql,
)

GRANULARITIES = ("day", "week", "month")
DEFAULT_WEEKS = 12
MAX_DAYS = 3 * 366

SUM_COLUMNS = PERIOD_COLUMNS  # the report reads exactly what the rollup sums


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


# --- periods ------------------------------------------------------------------------------------


def period_of(day: dt.date, granularity: str) -> dt.date:
    if granularity == "week":
        return day - dt.timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def _next_period(start: dt.date, granularity: str) -> dt.date:
    if granularity == "week":
        return start + dt.timedelta(days=7)
    if granularity == "month":
        return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return start + dt.timedelta(days=1)


def periods(params: ReportParams) -> list[tuple[dt.date, dt.date, dt.date]]:
    """(key, first day, last day) of each period, clipped to the report range."""
    out = []
    start = period_of(params.date_from, params.granularity)
    while start <= params.date_to:
        nxt = _next_period(start, params.granularity)
        out.append((start, max(start, params.date_from), min(nxt - dt.timedelta(days=1), params.date_to)))
        start = nxt
    return out


def _period_sql(granularity: str) -> str:
    if connection.vendor == "postgresql":
        return "day" if granularity == "day" else f"CAST(date_trunc('{granularity}', day) AS date)"
    if granularity == "week":
        return "date(day, '-' || ((CAST(strftime('%%w', day) AS INTEGER) + 6) %% 7) || ' days')"
    if granularity == "month":
        return "date(day, 'start of month')"
    return "day"


def whole_periods(params: ReportParams, plist, today: dt.date) -> tuple[list[dt.date], list[tuple[dt.date, dt.date]]]:
    """Split periods into whole ones (read from the week/month rollup) and clipped ones (summed from days).
    A period cut only by `to` on or after today is whole: no day after today has events yet."""
    if params.granularity == "day":
        return [], []
    whole, clipped = [], []
    for key, first, last in plist:
        full_end = _next_period(key, params.granularity) - dt.timedelta(days=1)
        if first == key and (last == full_end or last >= today):
            whole.append(key)
        else:
            clipped.append((first, last))
    return whole, clipped


def _year_masks(plist) -> list[tuple[str, int, str]]:
    """(period key, year, bit(366) mask text) for each period's days in the range."""
    out = []
    for label, first, last in ((key.isoformat(), first, last) for key, first, last in plist):
        by_year: dict[int, list[str]] = {}
        day = first
        while day <= last:
            bits = by_year.setdefault(day.year, ["0"] * 366)
            bits[day.timetuple().tm_yday - 1] = "1"
            day += dt.timedelta(days=1)
        out.extend((label, year, "".join(bits)) for year, bits in by_year.items())
    return out


# --- the report statement -----------------------------------------------------------------------
#
# The whole report is one SQL statement over the rollups (PostgreSQL and SQLite alike): CTEs for the
# periods, the summed columns, distinct users, time-to-ready histograms, prorated seat costs and team
# sizes, joined per period x team x tool. The database writes the rows as JSON text, which the API
# sends as it is: at 5,600 rows, building and re-serialising Python dicts alone would cost more
# than the 50 ms budget. The summary parts (totals, top tools, series, unused seats) come back as
# small JSON arrays that Python shapes; the totals line uses the rows' own field expressions. Rounding is
# half away from zero (SQL's ROUND).


class _Statement:
    """Collects CTEs and their arguments in order."""

    def __init__(self) -> None:
        self.ctes: list[str] = []
        self.args: list[Any] = []

    def cte(self, name: str, sql: str, args: list[Any]) -> None:
        self.ctes.append(f"{name} AS ({sql})")
        self.args.extend(args)


def _scope(scope: list[str] | None, team: str) -> tuple[str, list[Any]]:
    """` AND <team> IN (...)` for a manager's teams (none: nothing matches); empty for every team."""
    if scope is None:
        return "", []
    if not scope:
        return " AND 1 = 0", []
    return f" AND {team} IN ({', '.join(['%s'] * len(scope))})", list(scope)


def _filters(params: ReportParams, scope: list[str] | None, team: str = "team_slug", tool: str = "tool_slug"):
    sql, args = _scope(scope, team)
    if params.tool:
        sql += f" AND {tool} = %s"
        args.append(params.tool)
    return sql, args


def _day_ranges(d: Dialect, ranges: list[tuple[dt.date, dt.date]]) -> tuple[str, list[Any]]:
    sql = " OR ".join([f"(day >= {d.date} AND day <= {d.date})"] * len(ranges))
    return f"({sql})", [day for r in ranges for day in r]


def _union(parts: list[tuple[str, list[Any]]]) -> tuple[str, list[Any]]:
    return " UNION ALL ".join(p[0] for p in parts), [a for p in parts for a in p[1]]


def _rollup_source(
    d: Dialect,
    params: ReportParams,
    scope: list[str] | None,
    whole: list[dt.date],
    ranges: list[tuple[dt.date, dt.date]],
    *,
    period_table: str,
    period_cols: str,
    day_table: str,
    day_cols: str,
    extra_group: str = "",
    whole_where: str = "",
) -> list[tuple[str, list[Any]]]:
    """Whole periods from the week/month rollup, clipped ones summed from the day rollup."""
    filt, fargs = _filters(params, scope)
    parts = []
    if whole:
        parts.append(
            (
                f"SELECT start AS p, team_slug AS team, tool_slug AS tool, {period_cols} FROM {period_table} "
                f"WHERE kind = %s AND start >= {d.date} AND start <= {d.date}{filt}{whole_where}",
                [params.granularity, whole[0], whole[-1], *fargs],
            )
        )
    if ranges:
        days_sql, dargs = _day_ranges(d, ranges)
        group = "1, 2, 3" + (", 4" if extra_group else "")
        parts.append(
            (
                f"SELECT {_period_sql(params.granularity)} AS p, team_slug AS team, tool_slug AS tool, {day_cols} "
                f"FROM {day_table} WHERE {days_sql}{filt} GROUP BY {group}",
                [*dargs, *fargs],
            )
        )
    return parts


def _users_cte(
    d: Dialect,
    params: ReportParams,
    scope: list[str] | None,
    plist,
    whole: list[dt.date],
    *,
    stored_folds: bool = False,
) -> tuple[str, list[Any]]:
    """Distinct active users as (p, team, tool, n): '*' folds teams or tools, p NULL is the whole range.
    `stored_folds`: the whole periods' folds are read from the stored period reports (CTE tt)."""
    from .rollup import DAY_USERS_TABLE, USER_YEAR_TABLE

    if d.pg and scope is None:
        # whole periods precomputed by the rollup (their rows carry their own users: only the '*' folds are
        # read here, for the series); clipped periods from the per user x year bitmaps, the range (per tool
        # and overall) from the per day x tool bitmaps
        parts = []
        if whole and stored_folds:
            parts.append(("SELECT p, team, tool, active_users FROM tt WHERE active_users IS NOT NULL", []))
        elif whole:
            level, largs = (
                (" AND tool_slug = %s", [params.tool])
                if params.tool
                else (" AND (team_slug = '*' OR tool_slug = '*')", [])
            )
            parts.append(
                (
                    f"SELECT start AS p, team_slug AS team, tool_slug AS tool, users AS n "
                    f"FROM {UsagePeriodUsers._meta.db_table} WHERE kind = %s AND start >= %s AND start <= %s{level}",
                    [params.granularity, whole[0], whole[-1], *largs],
                )
            )
        targs = [params.tool] if params.tool else []
        masks = _year_masks([p for p in plist if p[0] not in set(whole)])
        if masks:
            # a period across new year has a mask per year: count each person once
            count = "COUNT(DISTINCT a.user_ref)" if params.date_from.year != params.date_to.year else "COUNT(*)"
            values = ", ".join(["(%s, %s, CAST(%s AS bit(366)))"] * len(masks))
            parts.append(
                (
                    f"SELECT CAST(m.p AS date), a.team_slug, a.tool_slug, {count} "
                    f"FROM {USER_YEAR_TABLE} a JOIN (VALUES {values}) m(p, yr, mask) ON a.year = m.yr "
                    "AND (a.days & m.mask) <> CAST(REPEAT('0', 366) AS bit(366))"
                    + (" AND a.tool_slug IN (%s, '*')" if params.tool else "")
                    + " GROUP BY m.p, a.team_slug, a.tool_slug",
                    [*(v for m in masks for v in m), *targs],
                )
            )
        parts.append(
            (
                f"SELECT CAST(NULL AS date), '*', tool_slug, bit_count(bit_or(users)) FROM {DAY_USERS_TABLE} "
                "WHERE day >= %s AND day <= %s"
                + (" AND tool_slug IN (%s, '*')" if params.tool else "")
                + " GROUP BY tool_slug",
                [params.date_from, params.date_to, *targs],
            )
        )
        return _union(parts)
    filt, fargs = _filters(params, scope)
    src = f"{UsageUserDay._meta.db_table} WHERE day >= {d.date} AND day <= {d.date}{filt}"
    args = [params.date_from, params.date_to, *fargs]
    period = _period_sql(params.granularity)
    if d.pg:
        return (
            "SELECT p, COALESCE(team, '*'), COALESCE(tool, '*'), COUNT(DISTINCT user_ref) FROM "
            f"(SELECT {period} AS p, team_slug AS team, tool_slug AS tool, user_ref FROM {src}) s "
            "GROUP BY GROUPING SETS ((p, team, tool), (p, tool), (p, team), (tool), ())",
            args,
        )
    selects = [
        (f"{period}", "team_slug", "tool_slug", "1, 2, 3"),
        (f"{period}", "'*'", "tool_slug", "1, 3"),
        (f"{period}", "team_slug", "'*'", "1, 2"),
        ("NULL", "'*'", "tool_slug", "3"),
        ("NULL", "'*'", "'*'", ""),
    ]
    return _union(
        [
            (
                f"SELECT {p}, {team}, {tool}, COUNT(DISTINCT user_ref) FROM {src}" + (f" GROUP BY {g}" if g else ""),
                args,
            )
            for p, team, tool, g in selects
        ]
    )


def _grants_cte(
    d: Dialect, st: _Statement, params: ReportParams, scope: list[str] | None, today: dt.date, now: dt.datetime
) -> None:
    """g: paid grants that overlap the range, each with the days it was active (open ends: the range's end
    for active grants, today for others) and whether it is active now."""
    team_filter, team_args = _filters(params, scope, team="t.slug", tool="a.slug")
    open_end = f"CASE WHEN gr.state = 'active' THEN {d.date} ELSE {d.date} END"
    st.cte(
        "g(team, tool, seats, price, first_day, last_day, active)",
        f"SELECT t.slug, a.slug, gr.seats, CAST(a.monthly_price_per_seat AS {d.num}), {d.utc_date('gr.created_at')}, "
        f"{d.least}(COALESCE({d.utc_date('gr.ended_at')}, {open_end}), COALESCE({d.utc_date('gr.expires_at')}, "
        f"{open_end}), {open_end}), "
        "CASE WHEN gr.state = 'active' AND (gr.expires_at IS NULL OR gr.expires_at > %s) THEN 1 ELSE 0 END "
        f"FROM {AccessGrant._meta.db_table} gr JOIN {Team._meta.db_table} t ON t.id = gr.team_id "
        f"JOIN {AITool._meta.db_table} a ON a.id = gr.tool_id "
        f"WHERE gr.seats IS NOT NULL AND a.monthly_price_per_seat > 0 AND {d.utc_date('gr.created_at')} <= {d.date} "
        f"AND (gr.ended_at IS NULL OR {d.utc_date('gr.ended_at')} >= {d.date}) "
        f"AND (gr.expires_at IS NULL OR {d.utc_date('gr.expires_at')} >= {d.date}){team_filter}",
        [
            *[params.date_to, today] * 3,
            connection.ops.adapt_datetimefield_value(now),
            params.date_to,
            params.date_from,
            params.date_from,
            *team_args,
        ],
    )


def _members_cte(st: _Statement, scope: list[str] | None) -> None:
    """mem: today's size of every team in scope."""
    mem_filter, mem_args = _scope(scope, "t.slug")
    st.cte(
        "mem(mteam, members)",
        f"SELECT t.slug, COUNT(m.user_id) FROM {Team._meta.db_table} t "
        f"LEFT JOIN {membership_table()} m ON m.group_id = t.group_id WHERE 1 = 1{mem_filter} GROUP BY t.slug",
        mem_args,
    )


def _periods_cte(d: Dialect, st: _Statement, plist) -> None:
    """per: each period's key and its first and last day in the range."""
    st.cte(
        "per(pp, first_day, last_day)",
        "VALUES " + ", ".join([f"({d.date}, {d.date}, {d.date})"] * len(plist)),
        [v for period in plist for v in period],
    )


def _totals_cte(d: Dialect, st: _Statement, source: str, *, peaks: str, seat: str, tool: str | None) -> None:
    """tot, the totals line's inputs: the summed columns of `source`, distinct users over the range (or the
    vendor-reported peaks of each team and tool, if larger), team sizes, the median and the seat cost."""
    st.cte(
        "tot",
        f"SELECT {', '.join(f'COALESCE(SUM({c}), 0) AS {c}' for c in SUM_COLUMNS)}, "
        f"{d.greatest}(COALESCE((SELECT n FROM users WHERE p IS NULL AND team = '*' AND tool = %s), 0), "
        f"COALESCE((SELECT SUM(peak) FROM {peaks}), 0)) AS active, "
        "(SELECT NULLIF(SUM(members), 0) FROM mem) AS members, (SELECT median FROM tmed) AS median, "
        f"COALESCE({seat}, 0) AS seat FROM {source}",
        [tool or "*"],
    )


def _first_uses_sql(d: Dialect, params: ReportParams, scope: list[str] | None) -> tuple[str, list[Any]]:
    """How many (team, tool) pairs were first used in the range (the funnel's third stage)."""
    filt, fargs = _filters(params, scope)
    return (
        f"(SELECT COUNT(*) FROM {UsageFirstUse._meta.db_table} WHERE first_day >= {d.date} "
        f"AND first_day <= {d.date}{filt})",
        [params.date_from, params.date_to, *fargs],
    )


def _unused_sql(d: Dialect, unused: str) -> str:
    """Paid grants active now whose (team, tool) matches `unused`: their seats, price and cost in the range."""
    overlap, cost = prorated_seats_sql(d, d.date, d.date, "first_day", "last_day")
    return d.json_list(
        f"team, tool, seats, ROUND(price, 2), ROUND(CAST(CASE WHEN {overlap} THEN {cost} ELSE 0 END AS {d.num}), 2)",
        f"g WHERE active = 1 AND {unused}",
    )


def _report_ctes(
    params: ReportParams, scope: list[str] | None, plist, today: dt.date, now: dt.datetime
) -> tuple[Dialect, _Statement, str, list[Any]]:
    """The live report's CTEs, and the SQL of its rows' JSON text (the objects joined by ', '; NULL when
    there are none) with that SQL's arguments."""
    d = Dialect()
    st = _Statement()
    whole, clipped = whole_periods(params, plist, today)
    ranges = clipped if params.granularity != "day" else [(params.date_from, params.date_to)]
    cols = SUM_COLUMNS

    _periods_cte(d, st, plist)
    # summed columns (numbers only: this CTE is read five times, so it stays small); whole periods (w = 1)
    # bring their stored active users, clipped ones (w = 0) are summed from the days
    st.cte(
        "sums",
        *_union(
            _rollup_source(
                d,
                params,
                scope,
                whole,
                ranges,
                period_table=UsagePeriod._meta.db_table,
                period_cols=", ".join(cols) + ", reported_users AS rep, active_users AS active, 1 AS w",
                day_table=UsageDaily._meta.db_table,
                day_cols=", ".join(f"SUM({c}) AS {c}" for c in cols)
                + f", MAX(reported_users) AS rep, CAST(NULL AS {d.int}) AS active, 0 AS w",
            )
        ),
    )
    st.cte("users(p, team, tool, n)", *_users_cte(d, params, scope, plist, whole))
    # time-to-ready histograms: whole periods for the totals only, clipped ones for their rows' medians too
    st.cte(
        "hist",
        *_union(
            _rollup_source(
                d,
                params,
                scope,
                whole,
                ranges,
                period_table=UsagePeriodBucket._meta.db_table,
                period_cols="bucket, count AS n, 1 AS whole",
                day_table=UsageReadyBucket._meta.db_table,
                day_cols="bucket, SUM(count) AS n, 0 AS whole",
                extra_group="bucket",
                # every team and tool: the rollup's per-period totals ('*'); else the (team, tool) rows
                whole_where=" AND team_slug = '*'" if scope is None and not params.tool else " AND team_slug <> '*'",
            )
        ),
    )
    st.cte("med", median_sql(d, "SELECT p, team, tool, bucket, n FROM hist WHERE whole = 0"), [])
    _grants_cte(d, st, params, scope, today, now)
    overlap, cost = prorated_seats_sql(d, "per.first_day", "per.last_day", "g.first_day", "g.last_day")
    st.cte(
        "seat(p, team, tool, cost)",
        f"SELECT per.pp, g.team, g.tool, SUM({cost}) FROM g JOIN per ON {overlap} GROUP BY per.pp, g.team, g.tool",
        [],
    )
    _members_cte(st, scope)
    # rows: every (period, team, tool) with sums, plus those with only a paid seat
    users_join = med_join = ""
    active = "s.active"
    if ranges:  # clipped periods: users and median live (whole periods carry theirs)
        users_join = " LEFT JOIN users u ON s.w = 0 AND u.p = s.p AND u.team = s.team AND u.tool = s.tool"
        med_join = " LEFT JOIN med ON med.p = s.p AND med.team = s.team AND med.tool = s.tool"
        active = f"COALESCE(s.active, {d.greatest}(COALESCE(u.n, 0), s.rep))"
    zeros = ", ".join(f"0 AS {c}" for c in cols)
    st.cte(
        "r",
        f"SELECT s.p, s.team, s.tool, {', '.join(f's.{c}' for c in cols)}, s.rep, s.w, {active} AS active, "
        f"{'med.median' if ranges else 'NULL'} AS median, COALESCE(seat.cost, 0) AS seat FROM sums s"
        f"{users_join}{med_join} LEFT JOIN seat ON seat.p = s.p AND seat.team = s.team AND seat.tool = s.tool "
        f"UNION ALL SELECT seat.p, seat.team, seat.tool, {zeros}, 0, 0, 0, NULL, seat.cost FROM seat "
        "LEFT JOIN sums x ON x.p = seat.p AND x.team = seat.team AND x.tool = seat.tool WHERE x.p IS NULL",
        [],
    )
    st.cte("pairs", "SELECT team, tool, SUM(active_events) AS act, MAX(rep) AS peak FROM sums GROUP BY team, tool", [])
    # the totals line: the row's own metrics over every row; distinct users over the whole range
    st.cte(
        "tmed",
        median_sql(d, "SELECT 0 AS p, '' AS team, '' AS tool, bucket, SUM(n) AS n FROM hist GROUP BY bucket"),
        [],
    )
    _totals_cte(d, st, "sums", peaks="pairs", seat="(SELECT SUM(cost) FROM seat)", tool=params.tool)

    # the rows' JSON: whole periods straight from the rollup table with their stored static part (the
    # materialised CTEs above carry no text), clipped periods and seat-only rows from r, written live
    filt, fargs = _filters(params, scope, team="up.team_slug", tool="up.tool_slug")
    dynamic = "LEFT JOIN mem ON mem.mteam = {t} LEFT JOIN seat ON seat.p = {p} AND seat.team = {t} AND seat.tool = {tl}"
    whole_rows = (
        f"SELECT up.start AS p, per.first_day, per.last_day, up.team_slug AS team, up.tool_slug AS tool, "
        f"{', '.join(f'up.{c}' for c in cols)}, up.active_users AS active, "
        f"ROUND(CAST(up.median_ready_s AS {d.num}), 1) AS median, "
        "up.row_json AS frag, mem.members, COALESCE(seat.cost, 0) AS seat "
        f"FROM {UsagePeriod._meta.db_table} up JOIN per ON per.pp = up.start "
        + dynamic.format(p="up.start", t="up.team_slug", tl="up.tool_slug")
        + f" WHERE up.kind = %s AND up.start >= {d.date} AND up.start <= {d.date}{filt}"
    )
    live_rows = (
        f"SELECT r.p, per.first_day, per.last_day, r.team, r.tool, {', '.join(f'r.{c}' for c in cols)}, r.active, "
        f"CAST(r.median AS {d.num}) AS median, NULL AS frag, mem.members, r.seat FROM r JOIN per ON per.pp = r.p "
        "LEFT JOIN mem ON mem.mteam = r.team WHERE r.w = 0"
    )
    parts, rargs = [live_rows], []
    if whole:
        parts.insert(0, whole_rows)
        rargs = [params.granularity, whole[0], whole[-1], *fargs]
    row = row_json_sql(d, f"COALESCE(frag, {static_fragment_sql(d)})")
    rows = d.concat(row, f"({' UNION ALL '.join(parts)}) x", f"p, team{d.collate}, tool{d.collate}", sep=", ")
    return d, st, rows, rargs


def _report_sql(
    params: ReportParams, scope: list[str] | None, plist, today: dt.date, now: dt.datetime
) -> tuple[str, list[Any]]:
    """The live report: every row computed from the rollups (see the note above)."""
    d, st, rows, rargs = _report_ctes(params, scope, plist, today, now)
    money = f"ROUND(CAST(SUM(seat + usage_cost) AS {d.num}), 2)"
    summary = [
        f"'[' || COALESCE({rows}, '') || ']'",
        f"(SELECT {object_sql(d, TOTAL_FIELDS)} FROM tot)",
        d.json_list(
            f"r.tool, SUM(agent_runs), SUM(active_events), {money}, MAX(tp.peak)",
            "r LEFT JOIN (SELECT tool, SUM(peak) AS peak FROM pairs GROUP BY tool) tp ON tp.tool = r.tool GROUP BY r.tool",
        ),
        d.json_list(f"p, team, SUM(workspaces_created), SUM(agent_runs), {money}, SUM(rep)", "r GROUP BY p, team"),
        d.json_list(
            "p, team, tool, n", "users" + ("" if params.tool else " WHERE team = '*' OR tool = '*' OR p IS NULL")
        ),
        d.json_list("mteam, members", "mem"),
        _unused_sql(d, "(team, tool) NOT IN (SELECT team, tool FROM pairs WHERE act > 0 OR peak > 0)"),
    ]
    first_uses, first_args = _first_uses_sql(d, params, scope)
    summary.append(first_uses)
    sql = f"WITH {', '.join(st.ctes)} SELECT {', '.join(summary)}"
    return sql, [*st.args, *rargs, *[params.date_to, params.date_from] * 2, *first_args]


# --- stored period reports ----------------------------------------------------------------------
#
# A report over every team and tool of whole periods is most of the data (5,600 rows, 3.4 MB of JSON for
# 200 teams over 4 weeks), and writing that JSON row by row is most of its cost. So the rollup keeps, for
# each whole period, its rows' JSON as the live report writes it and its sums per team, per tool and
# overall (UsagePeriodTotal). They depend on today's team sizes and paid grants, so each records a
# fingerprint of those and the period's last day when written; the report reads them only while both still
# match, and computes the report live otherwise. The rollup rewrites stale ones on its next run.


def inputs_key_sql(d: Dialect, sizes_from: str | None = None) -> str:
    """SQL for the fingerprint of what report rows take from today's teams and grants: each team's size,
    and each paid grant's team, tool, seats, price, state and dates. `sizes_from`: every team's
    (slug, n) already in the statement."""
    team, tool, grant = Team._meta.db_table, AITool._meta.db_table, AccessGrant._meta.db_table
    members = membership_table()
    sizes = d.concat(
        f"slug || '=' || CAST(n AS {d.text})",
        sizes_from
        or f"(SELECT t.slug, COUNT(m.user_id) AS n FROM {team} t LEFT JOIN {members} m ON m.group_id = t.group_id "
        "GROUP BY t.slug) q",
        f"slug{d.collate}",
    )
    fields = [
        "t.slug",
        "a.slug",
        f"CAST(gr.seats AS {d.text})",
        f"CAST(a.monthly_price_per_seat AS {d.text})",
        "gr.state",
        *(f"COALESCE(CAST(gr.{c} AS {d.text}), '')" for c in ("created_at", "ended_at", "expires_at")),
    ]
    grants = d.concat(
        " || ':' || ".join(fields),
        f"{grant} gr JOIN {team} t ON t.id = gr.team_id JOIN {tool} a ON a.id = gr.tool_id "
        "WHERE gr.seats IS NOT NULL AND a.monthly_price_per_seat > 0",
        "gr.id",
    )
    return f"md5(COALESCE({sizes}, '') || '|' || COALESCE({grants}, ''))"


# periods starting longer ago than this are not stored (reports over them are computed live): a change of
# teams or grants rewrites every stored period, so their number stays bounded however old the data
STORED_REPORT_DAYS = 400


def _stored(start: dt.date, today: dt.date) -> bool:
    return today - dt.timedelta(days=STORED_REPORT_DAYS) <= start <= today


def _period_last_day(kind: str, start: dt.date) -> dt.date:
    return _next_period(start, kind) - dt.timedelta(days=1)


def store_period_report(kind: str, start: dt.date, *, now: dt.datetime | None = None) -> None:
    """Write a whole period's UsagePeriodTotal rows from the live report over that period alone (its rows'
    JSON, and its sums per team, per tool and overall), as of today's teams and grants."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    table = UsagePeriodTotal._meta.db_table
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {table} WHERE kind = %s AND start = %s", [kind, start])
        if not _stored(start, today):
            return
        params = ReportParams(date_from=start, date_to=min(_period_last_day(kind, start), today), granularity=kind)
        d, st, rows, rargs = _report_ctes(params, None, periods(params), today, now)
        cols = SUM_COLUMNS
        sums = ", ".join(f"COALESCE(SUM({c}), 0)" for c in cols) + ", COALESCE(SUM(rep), 0), COALESCE(SUM(seat), 0)"
        if d.pg:
            folds = (
                f"SELECT COALESCE(team, '*'), COALESCE(tool, '*'), {sums} FROM r "
                "GROUP BY GROUPING SETS ((team), (tool), ())"
            )
        else:
            folds = " UNION ALL ".join(
                [
                    f"SELECT team, '*', {sums} FROM r GROUP BY team",
                    f"SELECT '*', tool, {sums} FROM r GROUP BY tool",
                    f"SELECT '*', '*', {sums} FROM r",
                ]
            )
        names = ", ".join([*cols, "reported_users", "seat_cost", "active_users", "last_day", "inputs_key", "rows_json"])
        # one statement: the folds, and on the overall row the period's rows' JSON and the fingerprint
        overall = "CASE WHEN team = '*' AND tool = '*' THEN {} END"
        rows_text = f"COALESCE({rows}, '')"
        cur.execute(
            f"INSERT INTO {table} (kind, start, team_slug, tool_slug, {names}) "
            f"WITH {', '.join(st.ctes)}, f(team, tool, {', '.join(cols)}, rep, seat) AS ({folds}) "
            f"SELECT %s, {d.date}, team, tool, {', '.join(cols)}, rep, seat, u.users, {overall.format(d.date)}, "
            f"COALESCE({overall.format(inputs_key_sql(d))}, ''), {overall.format(rows_text)} "
            f"FROM f LEFT JOIN {UsagePeriodUsers._meta.db_table} u ON u.kind = %s AND u.start = {d.date} "
            "AND u.team_slug = f.team AND u.tool_slug = f.tool",
            [*st.args, kind, start, params.date_to, *rargs, kind, start],
        )


def refresh_stored_reports(*, now: dt.datetime | None = None) -> int:
    """Rewrite the stored period reports that no longer match today's teams and grants or today's date, and
    write those missing; returns how many periods were written. Called by each rollup run."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    d = Dialect()
    with connection.cursor() as cur:
        cur.execute(f"SELECT {inputs_key_sql(d)}")
        key = cur.fetchone()[0]
    stored = {
        (kind, start): (last_day, inputs_key)
        for kind, start, last_day, inputs_key in UsagePeriodTotal.objects.filter(team_slug="*", tool_slug="*")
        .order_by()
        .values_list("kind", "start", "last_day", "inputs_key")
    }
    # every week and month from the first one with usage to today's, empty ones included (a range over
    # them must not fall back to the live report for want of a stored period)
    first = UsagePeriod.objects.order_by("start").values_list("start", flat=True).first()
    wanted = set()
    for kind in ("week", "month"):
        start = period_of(first, kind) if first else today
        while first and start <= today:
            if _stored(start, today):
                wanted.add((kind, start))
            start = _next_period(start, kind)
    written = 0
    for kind, start in sorted(wanted):
        if stored.get((kind, start)) != (min(_period_last_day(kind, start), today), key):
            store_period_report(kind, start, now=now)
            written += 1
    return written


def _stored_report_sql(params: ReportParams, plist, today: dt.date, now: dt.datetime) -> tuple[str, list[Any]]:
    """The report over every team and tool of whole periods, from the stored period reports. Its first column
    counts the periods whose stored report still holds: the result counts only if that is every period."""
    d = Dialect()
    st = _Statement()
    whole = [key for key, _, _ in plist]
    table, period = UsagePeriodTotal._meta.db_table, UsagePeriod._meta.db_table
    span = [params.granularity, whole[0], whole[-1]]
    cols = SUM_COLUMNS
    _periods_cte(d, st, plist)
    st.cte(
        "tt",
        f"SELECT start AS p, team_slug AS team, tool_slug AS tool, {', '.join(cols)}, reported_users AS rep, "
        f"seat_cost AS seat, active_users, last_day, inputs_key FROM {table} WHERE kind = %s AND start >= {d.date} "
        f"AND start <= {d.date}",
        span,
    )
    st.cte("users(p, team, tool, n)", *_users_cte(d, params, None, plist, whole, stored_folds=True))
    st.cte(
        "hist",
        f"SELECT bucket, SUM(count) AS n FROM {UsagePeriodBucket._meta.db_table} WHERE kind = %s "
        f"AND start >= {d.date} AND start <= {d.date} AND team_slug = '*' GROUP BY bucket",
        span,
    )
    st.cte("tmed", median_sql(d, "SELECT 0 AS p, '' AS team, '' AS tool, bucket, n FROM hist"), [])
    _grants_cte(d, st, params, None, today, now)
    _members_cte(st, None)
    # vendor-reported users: the peak day of each (team, tool) over the range (rows that have any)
    st.cte(
        "peaks",
        f"SELECT team_slug AS team, tool_slug AS tool, MAX(reported_users) AS peak FROM {period} WHERE kind = %s "
        f"AND start >= {d.date} AND start <= {d.date} AND reported_users > 0 GROUP BY team_slug, tool_slug",
        span,
    )
    _totals_cte(d, st, "tt WHERE team = '*' AND tool = '*'", peaks="peaks", seat="SUM(seat)", tool=None)
    used = (
        f"NOT EXISTS (SELECT 1 FROM {period} up WHERE up.kind = %s AND up.start >= {d.date} AND up.start <= {d.date} "
        "AND up.team_slug = g.team AND up.tool_slug = g.tool AND (up.active_events > 0 OR up.reported_users > 0))"
    )
    overall = (
        f"{table} WHERE kind = %s AND start >= {d.date} AND start <= {d.date} AND team_slug = '*' AND tool_slug = '*' "
        "AND rows_json <> ''"
    )
    summary = [
        f"(SELECT COUNT(*) FROM tt JOIN per ON per.pp = tt.p WHERE tt.team = '*' AND tt.tool = '*' "
        "AND tt.last_day = per.last_day "
        f"AND tt.inputs_key = {inputs_key_sql(d, '(SELECT mteam AS slug, members AS n FROM mem) q')})",
        f"'[' || COALESCE({d.concat('rows_json', overall, 'start', sep=', ')}, '') || ']'",
        f"(SELECT {object_sql(d, TOTAL_FIELDS)} FROM tot)",
        d.json_list(
            f"tt.tool, SUM(agent_runs), SUM(active_events), ROUND(CAST(SUM(seat + usage_cost) AS {d.num}), 2), "
            "MAX(tp.peak)",
            "tt LEFT JOIN (SELECT tool, SUM(peak) AS peak FROM peaks GROUP BY tool) tp ON tp.tool = tt.tool "
            "WHERE tt.team = '*' AND tt.tool <> '*' GROUP BY tt.tool",
        ),
        d.json_list(
            f"p, team, workspaces_created, agent_runs, ROUND(CAST(seat + usage_cost AS {d.num}), 2), rep",
            "tt WHERE tool = '*' AND team <> '*'",
        ),
        d.json_list("p, team, tool, n", "users WHERE team = '*' OR tool = '*' OR p IS NULL"),
        d.json_list("mteam, members", "mem"),
        _unused_sql(d, used),
    ]
    first_uses, first_args = _first_uses_sql(d, params, None)
    summary.append(first_uses)
    sql = f"WITH {', '.join(st.ctes)} SELECT {', '.join(summary)}"
    return sql, [*st.args, *span, *[params.date_to, params.date_from] * 2, *span, *first_args]


# --- shaping ------------------------------------------------------------------------------------


class ReportRows(Sequence):
    """The report rows as the JSON text the database wrote; parsed into dicts only when read.

    The API writes `.json` into the response as it is; the page, the CSV and the command iterate."""

    def __init__(self, text: str) -> None:
        self.json = text
        self._parsed: list[dict[str, Any]] | None = None

    def _rows(self) -> list[dict[str, Any]]:
        if self._parsed is None:
            self._parsed = json.loads(self.json)
        return self._parsed

    def __getitem__(self, index):  # type: ignore[override]
        return self._rows()[index]

    def __len__(self) -> int:
        return len(self._rows())

    def __repr__(self) -> str:
        return f"ReportRows({len(self)} rows)"


def report_json(report: dict[str, Any], *, indent: int | None = None) -> str:
    """The report as JSON text, its rows spliced in as the database wrote them."""
    rows = report["rows"]
    rest = {k: v for k, v in report.items() if k != "rows"}
    if indent is not None or not isinstance(rows, ReportRows):
        return json.dumps({**rest, "rows": list(rows)}, indent=indent)
    return json.dumps(rest)[:-1] + ', "rows": ' + rows.json + "}"


def _json(value: Any) -> list:
    if value is None:
        return []
    return json.loads(value) if isinstance(value, str) else value


def _users_summary(entries: list, tool: str | None) -> dict[str, dict[tuple, int]]:
    """Fold the (p, team, tool, n) user counts into the series and the per-tool totals the report shows."""
    out: dict[str, dict[tuple, int]] = {"tool_series": {}, "team_series": {}, "tool_total": {}}
    for p, team, tl, n in entries:
        if p is None:  # the whole range
            if team == "*" and tl != "*":
                out["tool_total"][(tl,)] = n
            continue
        key = str(p)[:10]
        if team == "*" and tl == "*":
            continue
        if team == "*":
            out["tool_series"][(key, tl)] = n
        elif tl == "*":
            if not tool:
                out["team_series"][(key, team)] = n
        elif tool:
            out["team_series"][(key, team)] = n
    return out


def adoption_report(
    user: Any, params: ReportParams, *, now: dt.datetime | None = None, stored: bool = True
) -> dict[str, Any]:
    """The whole report as plain data; `rows` (a ReportRows) is exactly what `?format=csv` writes.

    Over every team and tool and whole periods it reads the stored period reports while they hold
    (`stored=False` computes it live regardless: the tests compare the two)."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    scope = report_scope(user, params.team)
    plist = periods(params)
    # period key (ISO text, as the database's JSON writes it) -> the period's first day in the range
    starts = {key.isoformat(): first.isoformat() for key, first, _ in plist}
    result = None
    whole, _clipped = whole_periods(params, plist, today)
    if stored and scope is None and not params.tool and plist and len(whole) == len(plist):
        sql, args = _stored_report_sql(params, plist, today, now)
        with connection.cursor() as cur:
            cur.execute(sql, args)
            valid, *result = cur.fetchone()
        if valid != len(plist):  # teams or grants changed since the rollup wrote them: compute it live
            result = None
    if result is None:
        sql, args = _report_sql(params, scope, plist, today, now)
        with connection.cursor() as cur:
            cur.execute(sql, args)
            result = cur.fetchone()
    rows_json, totals_json, tools_raw, team_raw, users_raw, mem_raw, unused_raw, first_uses = result

    users = _users_summary(_json(users_raw), params.tool)
    members = {team: int(n) for team, n in _json(mem_raw)}
    totals = json.loads(totals_json)
    totals.update({"period_start": params.date_from.isoformat(), "period_end": params.date_to.isoformat()})

    top_tools = sorted(
        (
            {
                "tool": tool,
                "active_users": max(users["tool_total"].get((tool,), 0), int(peak or 0)),
                "agent_runs": int(runs),
                "active_events": int(active),
                "estimated_cost": float(cost),
            }
            for tool, runs, active, cost, peak in _json(tools_raw)
            if tool and (active or users["tool_total"].get((tool,), 0))
        ),
        key=lambda r: (-r["active_users"], -r["active_events"], r["tool"]),
    )[:5]

    unused = sorted(
        (
            {
                "team": team,
                "tool": tool,
                "seats": int(seats),
                "monthly_price_per_seat": float(price),
                "estimated_cost": float(cost),
            }
            for team, tool, seats, price, cost in _json(unused_raw)
        ),
        key=lambda u: (u["team"], u["tool"]),
    )

    pending_qs = AccessRequest.objects.filter(status=AccessRequestStatus.PENDING).select_related(
        "team", "tool", "requester"
    )
    if scope is not None:
        pending_qs = pending_qs.filter(team__slug__in=scope)
    if params.tool:
        pending_qs = pending_qs.filter(tool__slug=params.tool)
    pending = [
        {
            "id": r.pk,
            "team": r.team.slug,
            "tool": r.tool.slug,
            "requester": r.requester.username,
            "created_at": r.created_at.isoformat(),
            "age_days": round((now - r.created_at).total_seconds() / 86400, 1),
        }
        for r in pending_qs.order_by("created_at")[:100]
    ]

    funnel = funnel_stages(
        totals["access_requested"], totals["access_granted"], int(first_uses), totals["agent_results_accepted"]
    )

    tool_series = [
        {"period_start": starts[p], "tool": tool, "active_users": n}
        for (p, tool), n in sorted(users["tool_series"].items())
        if tool and p in starts
    ]
    team_series = []
    for p, team, workspaces, runs, cost, peak in sorted(_json(team_raw), key=lambda e: (str(e[0]), e[1])):
        key = str(p)[:10]
        team_series.append(
            {
                "period_start": starts[key],
                "team": team,
                "active_users": max(users["team_series"].get((key, team), 0), int(peak or 0)),
                "workspaces_created": int(workspaces),
                "agent_runs": int(runs),
                "estimated_cost": float(cost),
            }
        )

    return {
        "from": params.date_from.isoformat(),
        "to": params.date_to.isoformat(),
        "granularity": params.granularity,
        "team": params.team,
        "tool": params.tool,
        "teams": sorted(members) if scope is None else scope,
        "periods": [
            {
                "period_start": f.isoformat(),
                "period_end": last.isoformat(),
                "partial": period_partial(key, f, last, _next_period(key, params.granularity), today),
            }
            for key, f, last in plist
        ],
        "demo_data": bool(totals["demo_events"]),
        "demo_events": totals["demo_events"],
        "generated_at": now.isoformat(),
        "rows": ReportRows(rows_json),
        "totals": totals,
        "top_tools": top_tools,
        "unused_paid_seats": unused,
        "pending_access_requests": pending,
        "funnel": funnel,
        "tool_series": tool_series,
        "team_series": team_series,
    }
