"""Building blocks of the report statement: CTEs over the rollups, for PostgreSQL and SQLite alike.

The whole report is one SQL statement over the rollups: CTEs for the periods, the summed columns, distinct
users, time-to-ready histograms, prorated seat costs and team sizes, joined per period x team x tool. The
database writes the rows as JSON text, which the API sends as it is: at 5,600 rows, building and
re-serialising Python dicts alone would cost more than the 50 ms budget. The summary parts (totals, top
tools, series, unused seats) come back as small JSON arrays that Python shapes; the totals line uses the
rows' own field expressions. Rounding is half away from zero (SQL's ROUND). `live` assembles the live
statement from these, `stored_read` the one over stored period reports.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection

from ..models import AccessGrant, AITool, Team, UsageFirstUse, UsagePeriodUsers, UsageUserDay
from ..models.teams import membership_table
from .params import ReportParams
from .periods import Period, year_masks
from .rowsql import PERIOD_COLUMNS, Dialect, prorated_seats_sql
from .tables import DAY_USERS_TABLE, USER_YEAR_TABLE

SUM_COLUMNS = PERIOD_COLUMNS  # the report reads exactly what the rollup sums


class Statement:
    """Collects CTEs and their arguments in order."""

    def __init__(self) -> None:
        self.ctes: list[str] = []
        self.args: list[Any] = []

    def cte(self, name: str, sql: str, args: list[Any]) -> None:
        self.ctes.append(f"{name} AS ({sql})")
        self.args.extend(args)


def period_sql(granularity: str) -> str:
    """The period key of a `day` column, in SQL."""
    if connection.vendor == "postgresql":
        return "day" if granularity == "day" else f"CAST(date_trunc('{granularity}', day) AS date)"
    if granularity == "week":
        return "date(day, '-' || ((CAST(strftime('%%w', day) AS INTEGER) + 6) %% 7) || ' days')"
    if granularity == "month":
        return "date(day, 'start of month')"
    return "day"


def scope_sql(scope: list[str] | None, team: str) -> tuple[str, list[Any]]:
    """` AND <team> IN (...)` for a manager's teams (none: nothing matches); empty for every team."""
    if scope is None:
        return "", []
    if not scope:
        return " AND 1 = 0", []
    return f" AND {team} IN ({', '.join(['%s'] * len(scope))})", list(scope)


def filters(params: ReportParams, scope: list[str] | None, team: str = "team_slug", tool: str = "tool_slug"):
    sql, args = scope_sql(scope, team)
    if params.tool:
        sql += f" AND {tool} = %s"
        args.append(params.tool)
    return sql, args


def day_ranges(d: Dialect, ranges: list[tuple[dt.date, dt.date]]) -> tuple[str, list[Any]]:
    sql = " OR ".join([f"(day >= {d.date} AND day <= {d.date})"] * len(ranges))
    return f"({sql})", [day for r in ranges for day in r]


def union(parts: list[tuple[str, list[Any]]]) -> tuple[str, list[Any]]:
    return " UNION ALL ".join(p[0] for p in parts), [a for p in parts for a in p[1]]


def rollup_source(
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
    filt, fargs = filters(params, scope)
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
        days_sql, dargs = day_ranges(d, ranges)
        group = "1, 2, 3" + (", 4" if extra_group else "")
        parts.append(
            (
                f"SELECT {period_sql(params.granularity)} AS p, team_slug AS team, tool_slug AS tool, {day_cols} "
                f"FROM {day_table} WHERE {days_sql}{filt} GROUP BY {group}",
                [*dargs, *fargs],
            )
        )
    return parts


def users_cte(
    d: Dialect,
    params: ReportParams,
    scope: list[str] | None,
    plist: list[Period],
    whole: list[dt.date],
    *,
    stored_folds: bool = False,
    extra: tuple[str, list[Any]] | None = None,
) -> tuple[str, list[Any]]:
    """Distinct active users as (p, team, tool, n): '*' folds teams or tools, p NULL is the whole range.
    `stored_folds`: the whole periods' folds are read from the stored period reports (CTE tt). `extra`: more
    (p, team, tool, n) rows over every team (stored cuts' folds; PostgreSQL, which reads stored users)."""
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
        if extra:
            parts.append(extra)
        targs = [params.tool] if params.tool else []
        masks = year_masks([p for p in plist if p[0] not in set(whole)])
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
        return union(parts)
    filt, fargs = filters(params, scope)
    src = f"{UsageUserDay._meta.db_table} WHERE day >= {d.date} AND day <= {d.date}{filt}"
    args = [params.date_from, params.date_to, *fargs]
    period = period_sql(params.granularity)
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
    return union(
        [
            (
                f"SELECT {p}, {team}, {tool}, COUNT(DISTINCT user_ref) FROM {src}" + (f" GROUP BY {g}" if g else ""),
                args,
            )
            for p, team, tool, g in selects
        ]
    )


def grants_cte(
    d: Dialect, st: Statement, params: ReportParams, scope: list[str] | None, today: dt.date, now: dt.datetime
) -> None:
    """g: paid grants that overlap the range, each with the days it was active (open ends: the range's end
    for active grants, today for others) and whether it is active now."""
    team_filter, team_args = filters(params, scope, team="t.slug", tool="a.slug")
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


def members_cte(st: Statement, scope: list[str] | None) -> None:
    """mem: today's size of every team in scope."""
    mem_filter, mem_args = scope_sql(scope, "t.slug")
    st.cte(
        "mem(mteam, members)",
        f"SELECT t.slug, COUNT(m.user_id) FROM {Team._meta.db_table} t "
        f"LEFT JOIN {membership_table()} m ON m.group_id = t.group_id WHERE 1 = 1{mem_filter} GROUP BY t.slug",
        mem_args,
    )


def periods_cte(d: Dialect, st: Statement, plist: list[Period]) -> None:
    """per: each period's key and its first and last day in the range."""
    st.cte(
        "per(pp, first_day, last_day)",
        "VALUES " + ", ".join([f"({d.date}, {d.date}, {d.date})"] * len(plist)),
        [v for period in plist for v in period],
    )


def totals_cte(d: Dialect, st: Statement, source: str, *, peaks: str, seat: str, tool: str | None) -> None:
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


def first_uses_sql(d: Dialect, params: ReportParams, scope: list[str] | None) -> tuple[str, list[Any]]:
    """How many (team, tool) pairs were first used in the range (the funnel's third stage)."""
    filt, fargs = filters(params, scope)
    return (
        f"(SELECT COUNT(*) FROM {UsageFirstUse._meta.db_table} WHERE first_day >= {d.date} "
        f"AND first_day <= {d.date}{filt})",
        [params.date_from, params.date_to, *fargs],
    )


def unused_sql(d: Dialect, unused: str) -> str:
    """Paid grants active now whose (team, tool) matches `unused`: their seats, price and cost in the range."""
    overlap, cost = prorated_seats_sql(d, d.date, d.date, "first_day", "last_day")
    return d.json_list(
        f"team, tool, seats, ROUND(price, 2), ROUND(CAST(CASE WHEN {overlap} THEN {cost} ELSE 0 END AS {d.num}), 2)",
        f"g WHERE active = 1 AND {unused}",
    )
