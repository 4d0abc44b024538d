"""The adoption report: per period x team x tool metrics, read from the rollups only, shaped for the API.

    params = parse_params(request.GET)          # catalog.reports.params; 400 on a bad date or granularity
    report = adoption_report(user, params)      # 403 for developers and for a manager's other team

Module map: `params` (request and scope), `periods` (calendar), `sql` (CTE building blocks), `live` (the
live statement), `stored` (stored period reports and their fingerprint, written by the rollup),
`stored_read` (the statement over them), `cuts` (cut periods stored on first use), `rowsql` (one
definition of a row), `buckets` (time-to-ready histogram), `rollup` (the incremental rollups), `funnel`
(funnel and partial periods).

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
from typing import Any

from django.db import connection
from django.utils import timezone

from ..models import AccessRequest, AccessRequestStatus
from .cuts import held_cuts, request_cut_reports
from .funnel import funnel_stages, period_partial
from .live import report_sql
from .params import ReportParams, report_scope
from .periods import next_period, periods, whole_periods
from .stored_read import stored_report_sql


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

    Over every team and tool it reads the whole periods from the stored period reports while they hold,
    and the periods the range cuts from their stored cuts, or computes them from the days and asks a worker
    to store them (`stored=False` computes it all live regardless: the tests compare the two)."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    scope = report_scope(user, params.team)
    plist = periods(params)
    # period key (ISO text, as the database's JSON writes it) -> the period's first day in the range
    starts = {key.isoformat(): first.isoformat() for key, first, _ in plist}
    result = None
    whole, _clipped = whole_periods(params, plist, today)
    cut = [p for p in plist if p[0] not in set(whole)] if params.granularity != "day" else []
    if stored and scope is None and not params.tool and (whole or cut):
        held = held_cuts(params.granularity, cut)
        if whole or held:
            sql, args = stored_report_sql(params, plist, whole, today, now, held)
            with connection.cursor() as cur:
                cur.execute(sql, args)
                valid, *result = cur.fetchone()
            if valid != len(whole) + len(held):  # teams, grants or columns changed since: compute it live
                result = None
                held = []
        # the cut periods not stored (or stale): a worker stores them for the next request
        request_cut_reports(params.granularity, [p for p in cut if p not in held], today)
    if result is None:
        sql, args = report_sql(params, scope, plist, today, now)
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
                "partial": period_partial(key, f, last, next_period(key, params.granularity), today),
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
