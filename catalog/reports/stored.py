"""Stored period reports: each whole week's and month's report over every team, written by the rollup.

A report over every team and tool of whole periods is most of the data (5,600 rows, 3.4 MB of JSON for
200 teams over 4 weeks), and writing that JSON row by row is most of its cost. So the rollup keeps, for
each whole period, its rows' JSON as the live report writes it and its sums per team, per tool and
overall (UsagePeriodTotal). They depend on today's team sizes and paid grants, and on the report's own
columns, so each records a fingerprint of those (`inputs_key`) and the period's last day when written;
the report reads them only while both still match, and computes those periods live otherwise. The rollup
rewrites stale ones on its next run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from django.db import connection
from django.utils import timezone

from ..models import AccessGrant, AITool, Team, UsagePeriod, UsagePeriodTotal, UsagePeriodUsers
from ..models.teams import membership_table
from .live import report_ctes
from .params import ReportParams
from .periods import next_period, period_last_day, period_of, periods
from .rowsql import PERIOD_COLUMNS, ROW_FIELDS, ROWS_VERSION, TOTAL_FIELDS, Dialect

# Bump when what a stored report holds changes without its column lists changing (a column's meaning or
# rounding): the fingerprint changes, so every stored period is read live until the next rollup rewrites it.
STORED_SCHEMA_VERSION = 1

# periods starting longer ago than this are not stored (reports over them are computed live): a change of
# teams or grants rewrites every stored period, so their number stays bounded however old the data
STORED_REPORT_DAYS = 400


def schema_key() -> str:
    """The shape of a stored report: the version above and every column list it is written with."""
    shape = [STORED_SCHEMA_VERSION, ROWS_VERSION, ROW_FIELDS, TOTAL_FIELDS, PERIOD_COLUMNS]
    return hashlib.md5(json.dumps(shape).encode(), usedforsecurity=False).hexdigest()


def inputs_key_sql(d: Dialect, sizes_from: str | None = None) -> str:
    """SQL for the fingerprint of what stored reports take from outside their period: the report's shape
    (`schema_key`), each team's size, and each paid grant's team, tool, seats, price, state and dates.
    `sizes_from`: every team's (slug, n) already in the statement."""
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
    # the schema key is hex digits: safe as a literal
    return f"md5('{schema_key()}|' || COALESCE({sizes}, '') || '|' || COALESCE({grants}, ''))"


def is_stored(start: dt.date, today: dt.date) -> bool:
    return today - dt.timedelta(days=STORED_REPORT_DAYS) <= start <= today


def folds_sql(d: Dialect, *, by_period: bool) -> tuple[str, str]:
    """(columns, SELECT) folding the rows CTE `r` into (team, '*'), ('*', tool) and ('*', '*') rows of the
    summed columns, vendor-reported users and seat cost; `by_period`: per period `p` too."""
    cols = PERIOD_COLUMNS
    sums = ", ".join(f"COALESCE(SUM({c}), 0)" for c in cols) + ", COALESCE(SUM(rep), 0), COALESCE(SUM(seat), 0)"
    names = ", ".join([*(["p"] if by_period else []), "team", "tool", *cols, "rep", "seat"])
    p, g = ("p, ", "p, ") if by_period else ("", "")
    if d.pg:
        sets = f"({g}team), ({g}tool), ({g.rstrip(', ')})" if by_period else "(team), (tool), ()"
        return (
            names,
            f"SELECT {p}COALESCE(team, '*'), COALESCE(tool, '*'), {sums} FROM r GROUP BY GROUPING SETS ({sets})",
        )
    by = "GROUP BY p" if by_period else ""
    return names, " UNION ALL ".join(
        [
            f"SELECT {p}team, '*', {sums} FROM r GROUP BY {g}team",
            f"SELECT {p}'*', tool, {sums} FROM r GROUP BY {g}tool",
            f"SELECT {p}'*', '*', {sums} FROM r {by}",
        ]
    )


def store_period_report(kind: str, start: dt.date, *, now: dt.datetime | None = None) -> None:
    """Write a whole period's UsagePeriodTotal rows from the live report over that period alone (its rows'
    JSON, and its sums per team, per tool and overall), as of today's teams and grants."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    table = UsagePeriodTotal._meta.db_table
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {table} WHERE kind = %s AND start = %s", [kind, start])
        if not is_stored(start, today):
            return
        params = ReportParams(date_from=start, date_to=min(period_last_day(kind, start), today), granularity=kind)
        d, st, rows, rargs = report_ctes(params, None, periods(params), today, now)
        cols = PERIOD_COLUMNS
        fold_names, folds = folds_sql(d, by_period=False)
        names = ", ".join([*cols, "reported_users", "seat_cost", "active_users", "last_day", "inputs_key", "rows_json"])
        # one statement: the folds, and on the overall row the period's rows' JSON and the fingerprint
        overall = "CASE WHEN team = '*' AND tool = '*' THEN {} END"
        rows_text = f"COALESCE({rows}, '')"
        cur.execute(
            f"INSERT INTO {table} (kind, start, team_slug, tool_slug, {names}) "
            f"WITH {', '.join(st.ctes)}, f({fold_names}) AS ({folds}) "
            f"SELECT %s, {d.date}, team, tool, {', '.join(cols)}, rep, seat, u.users, {overall.format(d.date)}, "
            f"COALESCE({overall.format(inputs_key_sql(d))}, ''), {overall.format(rows_text)} "
            f"FROM f LEFT JOIN {UsagePeriodUsers._meta.db_table} u ON u.kind = %s AND u.start = {d.date} "
            "AND u.team_slug = f.team AND u.tool_slug = f.tool",
            [*st.args, kind, start, params.date_to, *rargs, kind, start],
        )


def refresh_stored_reports(*, now: dt.datetime | None = None) -> int:
    """Rewrite the stored period reports that no longer match today's teams and grants, the report's
    columns or today's date, and write those missing; returns how many periods were written. Called by
    each rollup run."""
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
            if is_stored(start, today):
                wanted.add((kind, start))
            start = next_period(start, kind)
    written = 0
    for kind, start in sorted(wanted):
        if stored.get((kind, start)) != (min(period_last_day(kind, start), today), key):
            store_period_report(kind, start, now=now)
            written += 1
    return written
