"""The report over every team and tool served from the stored period reports, cut periods stored or live.

A range that cuts a week or month (4 weeks from a Thursday) reads its whole periods' stored reports, its cut
periods' stored reports where a worker has written them (`cuts`), and computes the other cut periods' days
with the live report's own CTEs (`live.row_ctes`), so the result is exactly the live report's. The
statement's first column counts the stored periods and cuts whose report still holds (today's teams,
grants and the report's columns): the result counts only if that is all of them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..models import UsagePeriod, UsagePeriodBucket, UsagePeriodCut, UsagePeriodTotal, UsageReadyBucket
from .cuts import cut_match_sql
from .live import row_ctes
from .params import ReportParams
from .periods import Period
from .rowsql import TOTAL_FIELDS, Dialect, median_sql, object_sql, row_json_sql, static_fragment_sql
from .sql import (
    SUM_COLUMNS,
    Statement,
    day_ranges,
    first_uses_sql,
    grants_cte,
    members_cte,
    totals_cte,
    unused_sql,
    users_cte,
)
from .stored import folds_sql, inputs_key_sql


def stored_report_sql(
    params: ReportParams,
    plist: list[Period],
    stored: list[dt.date],
    today: dt.date,
    now: dt.datetime,
    cuts: list[Period] | None = None,
) -> tuple[str, list[Any]]:
    """The report over every team and tool: the periods keyed in `stored` (whole, consecutive) from their
    stored reports, the `cuts` (cut periods of plist) from theirs, the others in `plist` (cut by the range,
    at its ends) from the days."""
    d = Dialect()
    st = Statement()
    cuts = cuts or []
    table, period = UsagePeriodTotal._meta.db_table, UsagePeriod._meta.db_table
    cut_table = UsagePeriodCut._meta.db_table

    def whole_in(a: str = "") -> str:
        """The stored whole periods' rows (of a table aliased `a`); arguments: `span`."""
        if not stored:  # only cuts are stored: no whole period to read
            return "1 = 0"
        return f"{a}kind = %s AND {a}start >= {d.date} AND {a}start <= {d.date}"

    def cut_in_sql(a: str = "") -> str:
        """The stored cuts' rows (of a table aliased `a`); arguments: `cut_args`."""
        return f"{a}kind = %s AND " + (cut_match_sql(d, cuts, a.rstrip("."))[0] if cuts else "1 = 0")

    span = [params.granularity, stored[0], stored[-1]] if stored else []
    cut_args = [params.granularity, *(cut_match_sql(d, cuts)[1] if cuts else [])]
    in_span, cut_in = whole_in(), cut_in_sql()
    held = set(stored) | {cut[0] for cut in cuts}
    cols = ", ".join(SUM_COLUMNS)
    live = [p for p in plist if p[0] not in held]
    stored_rows = (
        f"SELECT start AS p, team_slug AS team, tool_slug AS tool, {cols}, reported_users AS rep, "
        f"seat_cost AS seat, active_users, last_day, inputs_key FROM {table} WHERE {in_span} "
        f"UNION ALL SELECT start, team_slug, tool_slug, {cols}, reported_users, seat_cost, active_users, last_day, "
        f"inputs_key FROM {cut_table} WHERE {cut_in} AND (team_slug = '*' OR tool_slug = '*')"
    )
    stored_args = [*span, *cut_args]
    if live:
        # the cut periods' rows as the live report writes them (CTEs per, sums, users, hist, med, g, seat,
        # mem, r, pairs over those periods; users over the whole range), folded like a stored period's
        source, rargs = row_ctes(
            d,
            st,
            params,
            None,
            live,
            today,
            now,
            whole=[],
            ranges=[(f, last) for _, f, last in live],
            users=([p for p in plist if p not in cuts], stored),
            users_extra=(
                f"SELECT start, team_slug, tool_slug, active_users FROM {cut_table} WHERE {cut_in} "
                "AND (team_slug = '*' OR tool_slug = '*') AND active_users IS NOT NULL",
                cut_args,
            )
            if cuts
            else None,
        )
        names, folds = folds_sql(d, by_period=True)
        st.cte(f"lf({names})", folds, [])
        st.cte(
            "tt",
            f"{stored_rows} UNION ALL SELECT p, team, tool, {cols}, rep, seat, CAST(NULL AS {d.int}), "
            f"CAST(NULL AS date), CAST(NULL AS {d.text}) FROM lf",
            stored_args,
        )
    else:
        source, rargs = "", []
        st.cte("tt", stored_rows, stored_args)
        st.cte("users(p, team, tool, n)", *users_cte(d, params, None, plist, sorted(held), stored_folds=True))
        grants_cte(d, st, params, None, today, now)
        members_cte(st, None)
    sper = [(key, last) for key, _, last in plist if key in held]
    st.cte(
        "sper(pp, last_day)",
        "VALUES " + ", ".join([f"({d.date}, {d.date})"] * len(sper)),
        [v for pair in sper for v in pair],
    )
    # time-to-ready over every team and tool: the stored periods' '*' histograms, the stored cuts' days and
    # the live cut days' rows
    live_hist = " UNION ALL SELECT bucket, n FROM hist" if live else ""
    cut_hist, cut_hist_args = "", []
    if cuts:
        days, cut_hist_args = day_ranges(d, [(first, last) for _, first, last in cuts])
        cut_hist = f" UNION ALL SELECT bucket, count FROM {UsageReadyBucket._meta.db_table} WHERE {days}"
    st.cte(
        "shist",
        f"SELECT bucket, SUM(n) AS n FROM (SELECT bucket, count AS n FROM {UsagePeriodBucket._meta.db_table} "
        f"WHERE {in_span} AND team_slug = '*'{cut_hist}{live_hist}) h GROUP BY bucket",
        [*span, *cut_hist_args],
    )
    st.cte("tmed", median_sql(d, "SELECT 0 AS p, '' AS team, '' AS tool, bucket, n FROM shist"), [])
    # vendor-reported users: the peak day of each (team, tool) over the range (rows that have any)
    live_peaks = " UNION ALL SELECT team, tool, rep FROM sums WHERE rep > 0" if live else ""
    pair = "team_slug <> '*' AND tool_slug <> '*'"
    st.cte(
        "peaks",
        f"SELECT team, tool, MAX(peak) AS peak FROM (SELECT team_slug AS team, tool_slug AS tool, "
        f"reported_users AS peak FROM {period} WHERE {in_span} AND reported_users > 0 UNION ALL SELECT team_slug, "
        f"tool_slug, reported_users FROM {cut_table} WHERE {cut_in} AND {pair} AND reported_users > 0{live_peaks}) pk "
        "GROUP BY team, tool",
        [*span, *cut_args],
    )
    totals_cte(d, st, "tt WHERE team = '*' AND tool = '*'", peaks="peaks", seat="SUM(seat)", tool=None)
    used = (
        f"NOT EXISTS (SELECT 1 FROM {period} up WHERE {whole_in('up.')} AND up.team_slug = g.team "
        "AND up.tool_slug = g.tool AND (up.active_events > 0 OR up.reported_users > 0)) "
        f"AND NOT EXISTS (SELECT 1 FROM {cut_table} uc WHERE {cut_in_sql('uc.')} AND uc.team_slug = g.team "
        "AND uc.tool_slug = g.tool AND (uc.active_events > 0 OR uc.reported_users > 0))"
    )
    if live:
        used += " AND (team, tool) NOT IN (SELECT team, tool FROM pairs WHERE act > 0 OR peak > 0)"
    rows = (
        f"SELECT start AS p, '' AS team, '' AS tool, rows_json AS txt FROM {table} WHERE {in_span} "
        "AND team_slug = '*' AND tool_slug = '*' AND rows_json <> '' "
        f"UNION ALL SELECT start, '', '', rows_json FROM {cut_table} WHERE {cut_in} "
        "AND team_slug = '*' AND tool_slug = '*' AND rows_json <> ''"
    )
    if live:
        row = row_json_sql(d, f"COALESCE(frag, {static_fragment_sql(d)})")
        rows += f" UNION ALL SELECT p, team, tool, {row} AS txt FROM ({source}) x"
    summary = [
        "(SELECT COUNT(*) FROM tt JOIN sper ON sper.pp = tt.p WHERE tt.team = '*' AND tt.tool = '*' "
        "AND tt.last_day = sper.last_day "
        f"AND tt.inputs_key = {inputs_key_sql(d, '(SELECT mteam AS slug, members AS n FROM mem) q')})",
        f"'[' || COALESCE({d.concat('txt', f'({rows}) y', f'p, team{d.collate}, tool{d.collate}', sep=', ')}, '') || ']'",
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
        unused_sql(d, used),
    ]
    first_uses, first_args = first_uses_sql(d, params, None)
    summary.append(first_uses)
    sql = f"WITH {', '.join(st.ctes)} SELECT {', '.join(summary)}"
    dates = [params.date_to, params.date_from] * 2
    return sql, [*st.args, *span, *cut_args, *rargs, *dates, *span, *cut_args, *first_args]
