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
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone

from .. import permissions as perms
from ..models import (
    AccessGrant,
    AccessRequest,
    AccessRequestStatus,
    Team,
    UsageDaily,
    UsageFirstUse,
    UsagePeriod,
    UsagePeriodBucket,
    UsagePeriodUsers,
    UsageReadyBucket,
    UsageUserDay,
)
from ..services.errors import InvalidInput, NotPermitted
from .rollup import PERIOD_COLUMNS, bucket_value

GRANULARITIES = ("day", "week", "month")
DEFAULT_WEEKS = 12
MAX_DAYS = 3 * 366
MONTH_DAYS = Decimal("365") / Decimal("12")

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
]

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


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _where(params: ReportParams, scope: list[str] | None) -> tuple[str, list[Any]]:
    sql = ["day >= %s", "day <= %s"]
    args: list[Any] = [params.date_from, params.date_to]
    if scope is not None:
        if not scope:
            sql.append("1 = 0")
        else:
            sql.append(f"team_slug IN ({', '.join(['%s'] * len(scope))})")
            args.extend(scope)
    if params.tool:
        sql.append("tool_slug = %s")
        args.append(params.tool)
    return " AND ".join(sql), args


def _fetch(sql: str, args: list[Any]) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


# --- queries over the rollups -------------------------------------------------------------------


def _sums_sql() -> str:
    """SUM of each rollup column, cast so every driver returns ints (and the cost a decimal)."""
    return ", ".join(
        f"SUM({c})" if c == "usage_cost" else f"CAST(COALESCE(SUM({c}), 0) AS bigint)" for c in SUM_COLUMNS
    )


def _sum_rows(rows: list[tuple], out: dict[tuple, dict[str, Any]], key_of) -> None:
    for row in rows:
        values = dict(zip(SUM_COLUMNS, row[3:-1], strict=True))
        cost = values["usage_cost"]
        if not isinstance(cost, Decimal):
            values["usage_cost"] = Decimal(str(cost or 0))
        values["reported_users"] = row[-1] or 0
        out[key_of(row)] = values


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


def _daily_sums(params: ReportParams, scope: list[str] | None, plist=None, today=None) -> dict[tuple, dict[str, Any]]:
    plist = plist if plist is not None else periods(params)
    today = today or timezone.now().date()
    whole, clipped = whole_periods(params, plist, today)
    sums = _sums_sql()
    out: dict[tuple, dict[str, Any]] = {}
    if whole:
        where, args = _where(params, scope)
        where = where.replace("day >= %s AND day <= %s", "kind = %s AND start >= %s AND start <= %s", 1)
        args = [params.granularity, whole[0], whole[-1], *args[2:]]
        rows = _fetch(
            f"SELECT start, team_slug, tool_slug, {sums}, MAX(reported_users) FROM {UsagePeriod._meta.db_table} "
            f"WHERE {where} GROUP BY start, team_slug, tool_slug",
            args,
        )
        _sum_rows(rows, out, lambda r: (_as_date(r[0]), r[1], r[2]))
    ranges = clipped if params.granularity != "day" else [(params.date_from, params.date_to)]
    if ranges:
        where, args = _where(params, scope)
        days_sql = " OR ".join(["(day >= %s AND day <= %s)"] * len(ranges))
        where = where.replace("day >= %s AND day <= %s", f"({days_sql})", 1)
        args = [d for r in ranges for d in r] + args[2:]
        period = _period_sql(params.granularity)
        rows = _fetch(
            f"SELECT {period} AS p, team_slug, tool_slug, {sums}, MAX(reported_users) "
            f"FROM {UsageDaily._meta.db_table} WHERE {where} GROUP BY p, team_slug, tool_slug",
            args,
        )
        _sum_rows(rows, out, lambda r: (_as_date(r[0]), r[1], r[2]))
    return out


def _year_masks(plist, params: ReportParams) -> list[tuple[str, int, str]]:
    """(period key, year, bit(366) mask text) for each period and for the whole range ('range')."""
    spans = [(key.isoformat(), first, last) for key, first, last in plist]
    spans.append(("range", params.date_from, params.date_to))
    out = []
    for label, first, last in spans:
        by_year: dict[int, list[str]] = {}
        day = first
        while day <= last:
            bits = by_year.setdefault(day.year, ["0"] * 366)
            bits[day.timetuple().tm_yday - 1] = "1"
            day += dt.timedelta(days=1)
        out.extend((label, year, "".join(bits)) for year, bits in by_year.items())
    return out


def _period_users(params: ReportParams, whole: list[dt.date], out: dict[str, dict[tuple, int]]) -> None:
    """Distinct users of whole periods, precomputed (every team: rows, tool series, team series)."""
    args: list[Any] = [params.granularity, whole[0], whole[-1]]
    tool_sql = ""
    if params.tool:
        tool_sql = " AND tool_slug = %s"
        args.append(params.tool)
    rows = _fetch(
        f"SELECT start, team_slug, tool_slug, users FROM {UsagePeriodUsers._meta.db_table} "
        f"WHERE kind = %s AND start >= %s AND start <= %s{tool_sql}",
        args,
    )
    tool = params.tool
    for start, team, tl, n in rows:
        key = _as_date(start)
        if team == "*" and tl == "*":
            continue
        if team == "*":
            out["tool_series"][(key, tl)] = n
        elif tl == "*":
            if not tool:
                out["team_series"][(key, team)] = n
        else:
            out["row"][(key, team, tl)] = n
            if tool:
                out["team_series"][(key, team)] = n


def _distinct_users_bitmaps(params: ReportParams, plist) -> dict[str, dict[tuple, int]]:
    """PostgreSQL, every team: distinct users from the per user x year day bitmaps, one scan.
    '*' rows fold tools (a team's users) or teams (a tool's users), so no DISTINCT is needed unless the
    range spans two years (a user then has a row per year)."""
    from .rollup import USER_YEAR_TABLE

    masks = _year_masks(plist, params)
    multi_year = params.date_from.year != params.date_to.year
    count = "COUNT(DISTINCT a.user_ref)" if multi_year else "COUNT(*)"
    values = ", ".join(["(%s, %s, CAST(%s AS bit(366)))"] * len(masks))
    args: list[Any] = [v for m in masks for v in m]
    tool_sql = ""
    if params.tool:
        tool_sql = " AND a.tool_slug IN (%s, '*')"
        args.append(params.tool)
    rows = _fetch(
        f"WITH m(p, yr, mask) AS (VALUES {values}) "
        f"SELECT m.p, a.team_slug, a.tool_slug, {count} FROM {USER_YEAR_TABLE} a "
        f"JOIN m ON a.year = m.yr AND (a.days & m.mask) <> CAST(REPEAT('0', 366) AS bit(366)){tool_sql} "
        "GROUP BY m.p, a.team_slug, a.tool_slug",
        args,
    )
    out: dict[str, dict[tuple, int]] = {name: {} for name in GROUPINGS}
    tool = params.tool
    for p, team, tl, n in rows:
        if p == "range":
            if team == "*" and tl == "*":
                if not tool:
                    out["total"][()] = n
            elif team == "*":
                out["tool_total"][(tl,)] = n
                if tool:
                    out["total"][()] = n
            elif tl == "*":
                if not tool:
                    out["team_total"][(team,)] = n
            elif tool:
                out["team_total"][(team,)] = n
            continue
        key = dt.date.fromisoformat(p)
        if team == "*" and tl == "*":
            continue
        if team == "*":
            out["tool_series"][(key, tl)] = n
        elif tl == "*":
            if not tool:
                out["team_series"][(key, team)] = n
        else:
            out["row"][(key, team, tl)] = n
            if tool:
                out["team_series"][(key, team)] = n
    return out


GROUPINGS = {
    "row": ("p", "team_slug", "tool_slug"),
    "tool_series": ("p", "tool_slug"),
    "team_series": ("p", "team_slug"),
    "tool_total": ("tool_slug",),
    "team_total": ("team_slug",),
    "total": (),
}


def _key(cols: tuple[str, ...], p: Any, team: str, tool: str) -> tuple:
    key: list[Any] = []
    if "p" in cols:
        key.append(_as_date(p))
    if "team_slug" in cols:
        key.append(team)
    if "tool_slug" in cols:
        key.append(tool)
    return tuple(key)


def _distinct_users(params: ReportParams, scope: list[str] | None, plist=None) -> dict[str, dict[tuple, int]]:
    """Distinct active users for every grouping the report needs, in one statement.

    PostgreSQL: one scan with GROUPING SETS; elsewhere a UNION ALL of the same GROUP BYs.
    """
    if connection.vendor == "postgresql" and scope is None and _has_user_years():
        plist = plist if plist is not None else periods(params)
        whole, _clipped = whole_periods(params, plist, timezone.now().date())
        out = _distinct_users_bitmaps(params, [p for p in plist if p[0] not in set(whole)])
        if whole:
            _period_users(params, whole, out)
        return out
    where, args = _where(params, scope)
    period = _period_sql(params.granularity)
    table = UsageUserDay._meta.db_table
    out: dict[str, dict[tuple, int]] = {name: {} for name in GROUPINGS}
    if connection.vendor == "postgresql":
        sets = ", ".join("(" + ", ".join(cols) + ")" for cols in GROUPINGS.values())
        rows = _fetch(
            f"SELECT p, team_slug, tool_slug, GROUPING(p, team_slug, tool_slug), COUNT(DISTINCT user_ref) "
            f"FROM (SELECT {period} AS p, team_slug, tool_slug, user_ref FROM {table} WHERE {where}) s "
            f"GROUP BY GROUPING SETS ({sets})",
            args,
        )
        # GROUPING bit set = column not grouped: p=4, team=2, tool=1
        masks = {
            0: "row",
            2: "tool_series",
            1: "team_series",
            6: "tool_total",
            5: "team_total",
            7: "total",
        }
        for p, team, tool, mask, n in rows:
            name = masks[mask]
            out[name][_key(GROUPINGS[name], p, team, tool)] = n
        return out
    parts, all_args = [], []
    for i, cols in enumerate(GROUPINGS.values()):
        select = [f"{period}" if "p" in cols else "NULL", "team_slug" if "team_slug" in cols else "NULL"]
        select.append("tool_slug" if "tool_slug" in cols else "NULL")
        group = ", ".join(period if c == "p" else c for c in cols)
        parts.append(
            f"SELECT {i}, {', '.join(select)}, COUNT(DISTINCT user_ref) FROM {table} WHERE {where}"
            + (f" GROUP BY {group}" if group else "")
        )
        all_args.extend(args)
    names = list(GROUPINGS)
    for idx, p, team, tool, n in _fetch(" UNION ALL ".join(parts), all_args):
        out[names[idx]][_key(GROUPINGS[names[idx]], p, team, tool)] = n
    return out


_user_years_seen: set[str] = set()


def _has_user_years() -> bool:
    from .rollup import USER_YEAR_TABLE

    alias = connection.settings_dict["NAME"]
    if alias not in _user_years_seen and USER_YEAR_TABLE in connection.introspection.table_names():
        _user_years_seen.add(alias)
    return alias in _user_years_seen


def _ready_histograms(
    params: ReportParams, scope: list[str] | None, plist=None, today=None
) -> dict[tuple, dict[int, int]]:
    plist = plist if plist is not None else periods(params)
    whole, clipped = whole_periods(params, plist, today or timezone.now().date())
    out: dict[tuple, dict[int, int]] = defaultdict(dict)
    rows: list[tuple] = []
    if whole:
        where, args = _where(params, scope)
        where = where.replace("day >= %s AND day <= %s", "kind = %s AND start >= %s AND start <= %s", 1)
        rows += _fetch(
            f"SELECT start, team_slug, tool_slug, bucket, count FROM {UsagePeriodBucket._meta.db_table} WHERE {where}",
            [params.granularity, whole[0], whole[-1], *args[2:]],
        )
    ranges = clipped if params.granularity != "day" else [(params.date_from, params.date_to)]
    if ranges:
        where, args = _where(params, scope)
        days_sql = " OR ".join(["(day >= %s AND day <= %s)"] * len(ranges))
        where = where.replace("day >= %s AND day <= %s", f"({days_sql})", 1)
        period = _period_sql(params.granularity)
        rows += _fetch(
            f"SELECT {period} AS p, team_slug, tool_slug, bucket, SUM(count) FROM {UsageReadyBucket._meta.db_table} "
            f"WHERE {where} GROUP BY p, team_slug, tool_slug, bucket",
            [d for r in ranges for d in r] + args[2:],
        )
    for p, team, tool, bucket, n in rows:
        out[(_as_date(p), team, tool)][bucket] = int(n)
    return out


def _median(hist: dict[int, int]) -> float | None:
    """The median of a histogram (the middle value, or the mean of the two middle values), at bucket resolution."""
    total = sum(hist.values())
    if not total:
        return None
    wanted = sorted({(total - 1) // 2, total // 2})
    found: list[float] = []
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        while wanted and wanted[0] < seen:
            wanted.pop(0)
            found.append(bucket_value(bucket))
    if len(found) == 1:
        return round(found[0], 1)
    return round(sum(found) / len(found), 1)


def _merge_hist(target: dict[int, int], source: dict[int, int]) -> None:
    for b, n in source.items():
        target[b] = target.get(b, 0) + n


def _paid_grants(params: ReportParams, scope: list[str] | None) -> list[dict[str, Any]]:
    start = dt.datetime.combine(params.date_from, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(params.date_to, dt.time.max, tzinfo=dt.UTC)
    qs = AccessGrant.objects.filter(seats__isnull=False, tool__monthly_price_per_seat__gt=0, created_at__lte=end)
    qs = qs.exclude(ended_at__lt=start).exclude(expires_at__lt=start)
    if scope is not None:
        qs = qs.filter(team__slug__in=scope)
    if params.tool:
        qs = qs.filter(tool__slug=params.tool)
    out = []
    now = timezone.now()
    for team, tool, seats, price, created, ended, expires, state in qs.values_list(
        "team__slug",
        "tool__slug",
        "seats",
        "tool__monthly_price_per_seat",
        "created_at",
        "ended_at",
        "expires_at",
        "state",
    ):
        last = min(d for d in (ended, expires, end if state == "active" else now) if d is not None)
        out.append(
            {
                "team": team,
                "tool": tool,
                "seats": seats,
                "price": Decimal(price),
                "first_day": created.astimezone(dt.UTC).date(),
                "last_day": last.astimezone(dt.UTC).date(),
                "active": state == "active" and (expires is None or expires > now),
            }
        )
    return out


def _seat_cost(grant: dict[str, Any], first: dt.date, last: dt.date) -> Decimal:
    lo, hi = max(first, grant["first_day"]), min(last, grant["last_day"])
    days = (hi - lo).days + 1
    if days <= 0:
        return Decimal(0)
    return grant["price"] * grant["seats"] * days / MONTH_DAYS


def _money(value: Decimal) -> float:
    return round(float(value), 2)


EMPTY_SUMS: dict[str, Any] = {**{c: 0 for c in SUM_COLUMNS}, "usage_cost": Decimal(0), "reported_users": 0}
EMPTY_HIST: dict[int, int] = {}


def _metrics(s: dict[str, Any], users: int, members: int | None, hist: dict[int, int], seat: Decimal) -> dict:
    active = max(users, s["reported_users"])
    usage = s["usage_cost"]
    ok, failed, finished = s["builds_succeeded"], s["builds_failed"], s["agent_runs_finished"]
    accepted = s["agent_results_accepted"]
    return {
        "active_users": active,
        "team_members": members,
        "adoption_rate": round(active / members, 3) if members else None,
        "workspaces_created": s["workspaces_created"],
        "build_success_rate": round(ok / (ok + failed), 3) if ok + failed else None,
        "median_time_to_ready_s": _median(hist) if hist else None,
        "agent_runs": s["agent_runs"],
        "agent_acceptance_rate": min(1.0, round(accepted / finished, 3)) if finished else None,
        "policy_denials": s["policy_denials"],
        "estimated_cost": _money(seat + usage),
        "seat_cost": _money(seat),
        "usage_cost": _money(usage),
        "builds_succeeded": ok,
        "builds_failed": failed,
        "agent_runs_finished": finished,
        "agent_results_accepted": accepted,
        "access_requested": s["access_requested"],
        "access_granted": s["access_granted"],
        "code_suggestions": s["suggestions"],
        "code_acceptances": s["acceptances"],
        "demo_events": s["demo_events"],
    }


def adoption_report(user: Any, params: ReportParams, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """The whole report as plain data (JSON-ready); `rows` is exactly what `?format=csv` writes."""
    now = now or timezone.now()
    scope = report_scope(user, params.team)
    plist = periods(params)
    bounds = {key: (first, last) for key, first, last in plist}
    sums = _daily_sums(params, scope, plist, now.date())
    users = _distinct_users(params, scope, plist)
    hists = _ready_histograms(params, scope, plist, now.date())
    grants = _paid_grants(params, scope)
    team_qs = Team.objects.all() if scope is None else Team.objects.filter(slug__in=scope)
    members = {slug: n for slug, n in _member_counts(team_qs)}

    seat_costs: dict[tuple, Decimal] = defaultdict(Decimal)
    for grant in grants:
        for key, first, last in plist:
            cost = _seat_cost(grant, first, last)
            if cost:
                seat_costs[(key, grant["team"], grant["tool"])] += cost

    keys = sorted(set(sums) | set(seat_costs))
    zero = Decimal(0)
    rows = []
    row_users = users["row"]
    pair_active: dict[tuple, int] = defaultdict(int)
    pair_peak: dict[tuple, int] = defaultdict(int)
    tool_runs: dict[str, int] = defaultdict(int)
    tool_active: dict[str, int] = defaultdict(int)
    tool_cost: dict[str, Decimal] = defaultdict(Decimal)
    team_period: dict[tuple, list] = {}
    total_seat = zero
    total_hist: dict[int, int] = {}
    for key in keys:
        period, team, tool = key
        s = sums.get(key) or EMPTY_SUMS
        seat = seat_costs.get(key, zero)
        hist = hists.get(key) or EMPTY_HIST
        first, last = bounds[period]
        rows.append(
            {
                "period_start": first.isoformat(),
                "period_end": last.isoformat(),
                "team": team,
                "tool": tool,
                **_metrics(s, row_users.get(key, 0), members.get(team), hist, seat),
            }
        )
        active, peak, runs, cost = s["active_events"], s["reported_users"], s["agent_runs"], seat + s["usage_cost"]
        pair = (team, tool)
        pair_active[pair] += active
        if peak > pair_peak[pair]:
            pair_peak[pair] = peak
        tool_runs[tool] += runs
        tool_active[tool] += active
        tool_cost[tool] += cost
        tp = team_period.get((period, team))
        if tp is None:
            tp = team_period[(period, team)] = [0, 0, zero, 0]
        tp[0] += s["workspaces_created"]
        tp[1] += runs
        tp[2] += cost
        tp[3] += peak
        total_seat += seat
        if hist:
            _merge_hist(total_hist, hist)

    total_sums = {c: sum((v[c] for v in sums.values()), zero if c == "usage_cost" else 0) for c in SUM_COLUMNS}
    total_sums["reported_users"] = sum(pair_peak.values())
    total_members = sum(members.values())
    totals = _metrics(total_sums, users["total"].get((), 0), total_members or None, total_hist, total_seat)
    totals.update({"period_start": params.date_from.isoformat(), "period_end": params.date_to.isoformat()})

    tool_peak: dict[str, int] = defaultdict(int)
    for (_team, tool), peak in pair_peak.items():
        tool_peak[tool] += peak
    top_tools = sorted(
        (
            {
                "tool": tool,
                "active_users": max(users["tool_total"].get((tool,), 0), tool_peak[tool]),
                "agent_runs": tool_runs[tool],
                "active_events": tool_active[tool],
                "estimated_cost": _money(tool_cost[tool]),
            }
            for tool in tool_runs
            if tool and (tool_active[tool] or users["tool_total"].get((tool,), 0))
        ),
        key=lambda r: (-r["active_users"], -r["active_events"], r["tool"]),
    )[:5]

    used_pairs = {pair for pair in pair_active if pair_active[pair] or pair_peak[pair]}
    unused = []
    for grant in grants:
        if (grant["team"], grant["tool"]) in used_pairs or not grant["active"]:
            continue
        cost = _seat_cost(grant, params.date_from, params.date_to)
        unused.append(
            {
                "team": grant["team"],
                "tool": grant["tool"],
                "seats": grant["seats"],
                "monthly_price_per_seat": _money(grant["price"]),
                "estimated_cost": _money(cost),
            }
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

    first_uses = UsageFirstUse.objects.filter(first_day__gte=params.date_from, first_day__lte=params.date_to)
    if scope is not None:
        first_uses = first_uses.filter(team_slug__in=scope)
    if params.tool:
        first_uses = first_uses.filter(tool_slug=params.tool)
    funnel = [
        {"stage": "requested", "count": total_sums.get("access_requested", 0)},
        {"stage": "granted", "count": total_sums.get("access_granted", 0)},
        {"stage": "first_use", "count": first_uses.count()},
        {"stage": "accepted_agent_result", "count": total_sums.get("agent_results_accepted", 0)},
    ]

    tool_series = [
        {"period_start": bounds[p][0].isoformat(), "tool": tool, "active_users": n}
        for (p, tool), n in sorted(users["tool_series"].items())
        if tool and p in bounds
    ]
    team_series = [
        {
            "period_start": bounds[p][0].isoformat(),
            "team": team,
            "active_users": max(users["team_series"].get((p, team), 0), tp[3]),
            "workspaces_created": tp[0],
            "agent_runs": tp[1],
            "estimated_cost": _money(tp[2]),
        }
        for (p, team), tp in sorted(team_period.items())
    ]

    return {
        "from": params.date_from.isoformat(),
        "to": params.date_to.isoformat(),
        "granularity": params.granularity,
        "team": params.team,
        "tool": params.tool,
        "teams": sorted(members) if scope is None else scope,
        "periods": [{"period_start": f.isoformat(), "period_end": last.isoformat()} for _, f, last in plist],
        "demo_data": bool(total_sums.get("demo_events", 0)),
        "demo_events": total_sums.get("demo_events", 0),
        "generated_at": now.isoformat(),
        "rows": rows,
        "totals": totals,
        "top_tools": top_tools,
        "unused_paid_seats": unused,
        "pending_access_requests": pending,
        "funnel": funnel,
        "tool_series": tool_series,
        "team_series": team_series,
    }


def _member_counts(team_qs) -> list[tuple[str, int]]:
    from django.db.models import Count

    return list(team_qs.annotate(n=Count("members")).values_list("slug", "n"))
