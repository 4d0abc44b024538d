"""SQL shared by the rollup and the report: one definition of a report row, for PostgreSQL and SQLite.

A report row's JSON has two parts. The static part (team, tool, active users, sums, rates, median) is
fixed once a week or month is over, so the rollup stores it with each whole period (`row_json`); the
report computes it live only for periods clipped by the report range. The dynamic part (period bounds,
team size, adoption rate and seat costs) depends on today's teams and grants and is added at report
time. Both parts are written by the database, rounding half away from zero.
"""

from __future__ import annotations

from django.db import connection

from .buckets import bucket_value_sql

# the columns a week or month sums from the daily rows (`UsagePeriod`), which the report reads as they are
PERIOD_COLUMNS = [
    "events",
    "active_events",
    "demo_events",
    "workspaces_created",
    "builds_succeeded",
    "builds_failed",
    "agent_runs",
    "agent_runs_finished",
    "agent_results_accepted",
    "policy_denials",
    "access_requested",
    "access_granted",
    "suggestions",
    "acceptances",
    "usage_cost",
    "input_tokens",
    "output_tokens",
    "model_cost",
]

# the shape of the report rows stored with each period (`UsagePeriod.row_json`): when it changes, the next
# rollup rewrites every stored period once (a RollupState row by this name says it was done). The stored
# period reports also key on it and on the column lists (`stored.schema_key`).
ROWS_VERSION = "rows:2-model-usage"

# the columns of a report row, in the CSV's order (new columns go at the end: scripts read CSVs by position).
# Changing them changes the row fragments the rollup stores: bump ROWS_VERSION above.
ROW_FIELDS = [
    "period_start",
    "period_end",
    "team",
    "tool",
    "active_users",
    "team_members",
    "adoption_rate",
    "workspaces_created",
    "build_success_rate",
    "median_time_to_ready_s",
    "agent_runs",
    "agent_acceptance_rate",
    "policy_denials",
    "estimated_cost",
    "seat_cost",
    "usage_cost",
    "builds_succeeded",
    "builds_failed",
    "agent_runs_finished",
    "agent_results_accepted",
    "access_requested",
    "access_granted",
    "code_suggestions",
    "code_acceptances",
    "demo_events",
    "input_tokens",
    "output_tokens",
    "model_cost",
]

# the members added when the report runs (today's team sizes and grants); the rest, but the period bounds,
# is kept with each whole period
DYNAMIC_FIELDS = ["team_members", "adoption_rate", "estimated_cost", "seat_cost"]
STATIC_FIELDS = [f for f in ROW_FIELDS if f not in ("period_start", "period_end", *DYNAMIC_FIELDS)]
# the totals line: a row's metrics over the whole range and every team and tool
TOTAL_FIELDS = [f for f in ROW_FIELDS if f not in ("period_start", "period_end", "team", "tool")]


class Dialect:
    """The few fragments that differ between PostgreSQL and SQLite."""

    def __init__(self) -> None:
        self.pg = connection.vendor == "postgresql"
        self.num = "numeric" if self.pg else "REAL"
        self.int = "bigint" if self.pg else "INTEGER"
        self.text = "text" if self.pg else "TEXT"
        self.greatest = "GREATEST" if self.pg else "MAX"
        self.least = "LEAST" if self.pg else "MIN"
        self.arr = "json_build_array" if self.pg else "json_array"
        self.date = "CAST(%s AS date)" if self.pg else "%s"
        self.collate = ' COLLATE "C"' if self.pg else ""

    def utc_date(self, column: str) -> str:
        return f"CAST(({column} AT TIME ZONE 'UTC') AS date)" if self.pg else f"date({column})"

    def days(self, last: str, first: str) -> str:
        """Whole days from `first` to `last`, both included."""
        if self.pg:
            return f"({last} - {first} + 1)"
        return f"(CAST(julianday({last}) - julianday({first}) AS INTEGER) + 1)"

    def quote(self, expr: str) -> str:
        """A JSON string literal of a text value."""
        return f"CAST(to_json(CAST({expr} AS text)) AS text)" if self.pg else f"json_quote({expr})"

    def value(self, expr: str) -> str:
        """A JSON number (or null) as text."""
        return f"COALESCE(CAST({expr} AS {self.text}), 'null')"

    def concat(self, expr: str, source: str, order: str, sep: str = ",") -> str:
        """The values of `expr` over `source` (a FROM clause) joined by `sep` in `order`; NULL when none."""
        if self.pg:
            return f"(SELECT string_agg({expr}, '{sep}' ORDER BY {order}) FROM {source})"
        return f"(SELECT group_concat(v, '{sep}') FROM (SELECT {expr} AS v FROM {source} ORDER BY {order}))"

    def json_list(self, items: str, source: str) -> str:
        """A JSON array of arrays, one per row of `source` (a FROM clause with any WHERE/GROUP BY)."""
        agg = "json_agg(x)" if self.pg else "json_group_array(json(x))"
        return f"(SELECT {agg} FROM (SELECT {self.arr}({items}) AS x FROM {source}) q)"


def median_sql(d: Dialect, source: str) -> str:
    """(p, team, tool, median) from histogram rows (p, team, tool, bucket, n): the middle value, or the
    mean of the two middle values, at bucket resolution."""
    return (
        f"SELECT p, team, tool, ROUND(CAST(AVG({bucket_value_sql('bucket')}) AS {d.num}), 1) AS median FROM ("
        f"SELECT p, team, tool, bucket, n, "
        f"CAST(SUM(n) OVER (PARTITION BY p, team, tool ORDER BY bucket) AS {d.int}) AS cum, "
        f"CAST(SUM(n) OVER (PARTITION BY p, team, tool) AS {d.int}) AS total FROM ({source}) h) hc "
        "WHERE (cum - n <= (total - 1) / 2 AND cum > (total - 1) / 2) OR (cum - n <= total / 2 AND cum > total / 2) "
        "GROUP BY p, team, tool"
    )


def _rate(d: Dialect, part: str, whole: str) -> str:
    return f"CASE WHEN {whole} > 0 THEN ROUND(CAST({part} AS {d.num}) / ({whole}), 3) END"


def field_sql(d: Dialect) -> dict[str, str]:
    """Each row field as an SQL expression over columns named team, tool, active (users), median, members,
    seat (cost) and the rollup's summed columns."""
    return {
        "team": "team",
        "tool": "tool",
        "active_users": "active",
        "team_members": "members",
        "adoption_rate": _rate(d, "active", "members"),
        "workspaces_created": "workspaces_created",
        "build_success_rate": _rate(d, "builds_succeeded", "builds_succeeded + builds_failed"),
        "median_time_to_ready_s": "median",
        "agent_runs": "agent_runs",
        "agent_acceptance_rate": f"CASE WHEN agent_runs_finished > 0 THEN {d.least}(1, "
        f"{_rate(d, 'agent_results_accepted', 'agent_runs_finished')}) END",
        "policy_denials": "policy_denials",
        "estimated_cost": f"ROUND(CAST(seat + usage_cost AS {d.num}), 2)",
        "seat_cost": f"ROUND(CAST(seat AS {d.num}), 2)",
        "usage_cost": f"ROUND(CAST(usage_cost AS {d.num}), 2)",
        "builds_succeeded": "builds_succeeded",
        "builds_failed": "builds_failed",
        "agent_runs_finished": "agent_runs_finished",
        "agent_results_accepted": "agent_results_accepted",
        "access_requested": "access_requested",
        "access_granted": "access_granted",
        "code_suggestions": "suggestions",
        "code_acceptances": "acceptances",
        "demo_events": "demo_events",
        # model calls through the gateway: tokens, and their cost in dollars to 6 places (as the gateway prices them)
        "input_tokens": "input_tokens",
        "output_tokens": "output_tokens",
        "model_cost": f"ROUND(CAST(model_cost AS {d.num}), 6)",
    }


def _members(d: Dialect, names: list[str]) -> str:
    fields = field_sql(d)
    out = []
    for name in names:
        expr = fields[name]
        value = d.quote(expr) if name in ("team", "tool") else d.value(expr)
        out.append(f"'\"{name}\": ' || {value}")
    return " || ', ' || ".join(out)


def static_fragment_sql(d: Dialect) -> str:
    """The static members of a row object, as JSON text without braces (what `row_json` stores)."""
    return _members(d, STATIC_FIELDS)


def row_json_sql(d: Dialect, static: str) -> str:
    """A whole row object: period bounds, the static members (`static`, an SQL text expression) and the
    members that depend on today's teams and grants."""
    return (
        '\'{"period_start": "\' || CAST(first_day AS ' + d.text + ') || \'", "period_end": "\' || '
        f"CAST(last_day AS {d.text}) || '\", ' || {static} || ', ' || {_members(d, DYNAMIC_FIELDS)} || '}}'"
    )


def object_sql(d: Dialect, names: list[str]) -> str:
    """A JSON object of the named fields (`TOTAL_FIELDS` for the totals line)."""
    return f"'{{' || {_members(d, names)} || '}}'"


def prorated_seats_sql(d: Dialect, first: str, last: str, grant_first: str, grant_last: str) -> tuple[str, str]:
    """(the days overlap, the seat cost of those days): price x seats per month, a month being 365/12 days."""
    lo, hi = f"{d.greatest}({first}, {grant_first})", f"{d.least}({last}, {grant_last})"
    return f"{hi} >= {lo}", f"price * seats * {d.days(hi, lo)} * 12 / 365"
