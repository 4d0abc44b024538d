"""The live report statement: every row computed from the rollups.

Whole periods come from the week and month rollups with their stored row fragments; clipped periods are summed
from the days.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..models import UsageDaily, UsagePeriod, UsagePeriodBucket, UsageReadyBucket
from .params import ReportParams
from .periods import Period, whole_periods
from .rowsql import TOTAL_FIELDS, Dialect, median_sql, object_sql, prorated_seats_sql, row_json_sql, static_fragment_sql
from .sql import (
    SUM_COLUMNS,
    Statement,
    filters,
    first_uses_sql,
    grants_cte,
    members_cte,
    periods_cte,
    rollup_source,
    totals_cte,
    union,
    unused_sql,
    users_cte,
)


def row_ctes(
    d: Dialect,
    st: Statement,
    params: ReportParams,
    scope: list[str] | None,
    plist: list[Period],
    today: dt.date,
    now: dt.datetime,
    *,
    whole: list[dt.date],
    ranges: list[tuple[dt.date, dt.date]],
    users: tuple[list[Period], list[dt.date]] | None = None,
    users_extra: tuple[str, list[Any]] | None = None,
) -> tuple[str, list[Any]]:
    """Add the CTEs of the report rows over `plist` (per, sums, users, hist, med, g, seat, mem, r, pairs):
    `whole` periods from the week/month rollup, `ranges` of days summed from the day rollup. `users`: the
    (periods, whole ones) the users CTE covers, if more than `plist` (the stored report's live days count
    people over its whole range); `users_extra`: its rows read elsewhere (stored cuts' folds). Returns the
    rows' source (one row per report row, with its stored static fragment or NULL) and its arguments."""
    cols = SUM_COLUMNS

    periods_cte(d, st, plist)
    # summed columns (numbers only: this CTE is read five times, so it stays small); whole periods (w = 1)
    # bring their stored active users, clipped ones (w = 0) are summed from the days
    st.cte(
        "sums",
        *union(
            rollup_source(
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
    users_plist, users_whole = users if users is not None else (plist, whole)
    st.cte("users(p, team, tool, n)", *users_cte(d, params, scope, users_plist, users_whole, extra=users_extra))
    # time-to-ready histograms: whole periods for the totals only, clipped ones for their rows' medians too
    st.cte(
        "hist",
        *union(
            rollup_source(
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
    grants_cte(d, st, params, scope, today, now)
    overlap, cost = prorated_seats_sql(d, "per.first_day", "per.last_day", "g.first_day", "g.last_day")
    st.cte(
        "seat(p, team, tool, cost)",
        f"SELECT per.pp, g.team, g.tool, SUM({cost}) FROM g JOIN per ON {overlap} GROUP BY per.pp, g.team, g.tool",
        [],
    )
    members_cte(st, scope)
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
    # the rows' JSON: whole periods straight from the rollup table with their stored static part (the
    # materialised CTEs above carry no text), clipped periods and seat-only rows from r, written live
    filt, fargs = filters(params, scope, team="up.team_slug", tool="up.tool_slug")
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
    if not whole:
        return live_rows, []
    return f"{whole_rows} UNION ALL {live_rows}", [params.granularity, whole[0], whole[-1], *fargs]


def report_ctes(
    params: ReportParams, scope: list[str] | None, plist: list[Period], today: dt.date, now: dt.datetime
) -> tuple[Dialect, Statement, str, list[Any]]:
    """The live report's CTEs, and the SQL of its rows' JSON text (the objects joined by ', '; NULL when
    there are none) with that SQL's arguments."""
    d = Dialect()
    st = Statement()
    whole, clipped = whole_periods(params, plist, today)
    ranges = clipped if params.granularity != "day" else [(params.date_from, params.date_to)]
    source, rargs = row_ctes(d, st, params, scope, plist, today, now, whole=whole, ranges=ranges)
    # the totals line: the row's own metrics over every row; distinct users over the whole range
    st.cte(
        "tmed",
        median_sql(d, "SELECT 0 AS p, '' AS team, '' AS tool, bucket, SUM(n) AS n FROM hist GROUP BY bucket"),
        [],
    )
    totals_cte(d, st, "sums", peaks="pairs", seat="(SELECT SUM(cost) FROM seat)", tool=params.tool)

    row = row_json_sql(d, f"COALESCE(frag, {static_fragment_sql(d)})")
    rows = d.concat(row, f"({source}) x", f"p, team{d.collate}, tool{d.collate}", sep=", ")
    return d, st, rows, rargs


def report_sql(
    params: ReportParams, scope: list[str] | None, plist: list[Period], today: dt.date, now: dt.datetime
) -> tuple[str, list[Any]]:
    """The live report: every row computed from the rollups (see `sql`)."""
    d, st, rows, rargs = report_ctes(params, scope, plist, today, now)
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
        unused_sql(d, "(team, tool) NOT IN (SELECT team, tool FROM pairs WHERE act > 0 OR peak > 0)"),
    ]
    first_uses, first_args = first_uses_sql(d, params, scope)
    summary.append(first_uses)
    sql = f"WITH {', '.join(st.ctes)} SELECT {', '.join(summary)}"
    return sql, [*st.args, *rargs, *[params.date_to, params.date_from] * 2, *first_args]
