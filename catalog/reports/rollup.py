"""Incremental rollups of usage events, rebuilt per affected day from a watermark.

Each run (the beat task `catalog.tasks.reports.rollup_usage`, every 30 s) finds the days touched by
events it has not seen: ids above the stored `last_event_id`, plus anything ingested since the previous
run minus `LOOKBACK` (so an event whose transaction committed late, with a lower id than one already
seen, is still picked up). It then rebuilds every rollup row of those days from the raw events, with
set-based `INSERT ... SELECT` statements, in one transaction under a row lock on the watermark.

Rebuilding a whole day (rather than adding deltas) makes it idempotent: a rerun, a late event for an
old day, or a re-import all converge on the same numbers. The first-use table keeps the earliest day,
which only ever moves earlier because events are append-only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from ..models import (
    ACTIVE_KINDS,
    RollupState,
    UsageDaily,
    UsageEvent,
    UsageFirstUse,
    UsagePeriod,
    UsagePeriodBucket,
    UsagePeriodCut,
    UsagePeriodTotal,
    UsagePeriodUsers,
    UsageReadyBucket,
    UsageUserDay,
)
from .buckets import bucket_sql
from .cuts import forget_cuts
from .periods import period_last_day, period_of
from .rowsql import PERIOD_COLUMNS, ROWS_VERSION, Dialect, median_sql, static_fragment_sql
from .stored import refresh_stored_reports, store_period_report
from .tables import DAY_USERS_TABLE, USER_INDEX_TABLE, USER_YEAR_TABLE

LOOKBACK = dt.timedelta(minutes=2)
DAY_CHUNK = 31


def _count(kind: str, extra: str = "") -> str:
    return f"SUM(CASE WHEN kind = '{kind}'{extra} THEN 1 ELSE 0 END)"


def _sum(kind: str, column: str) -> str:
    return f"SUM(CASE WHEN kind = '{kind}' AND {column} IS NOT NULL THEN {column} ELSE 0 END)"


def _daily_sql(placeholders: str) -> str:
    ev = UsageEvent._meta.db_table
    daily = UsageDaily._meta.db_table
    active = ", ".join(f"'{k}'" for k in sorted(ACTIVE_KINDS))
    columns = {
        "events": "COUNT(*)",
        "active_events": f"SUM(CASE WHEN kind IN ({active}) THEN 1 ELSE 0 END)",
        "demo_events": "SUM(CASE WHEN source = 'demo-seed' THEN 1 ELSE 0 END)",
        "workspaces_created": _count("workspace_created"),
        "workspaces_started": _count("workspace_started"),
        "workspaces_stopped": _count("workspace_stopped"),
        "workspaces_deleted": _count("workspace_deleted"),
        "builds_succeeded": _count("build_succeeded"),
        "builds_failed": _count("build_failed"),
        "build_seconds": "SUM(CASE WHEN kind IN ('build_succeeded', 'build_failed') AND duration_s IS NOT NULL "
        "THEN duration_s ELSE 0 END)",
        "tools_enabled": _count("tool_enabled"),
        "agent_runs": _count("agent_run_started"),
        "agent_runs_finished": _count("agent_run_finished"),
        "agent_runs_succeeded": _count("agent_run_finished", " AND outcome = 'succeeded'"),
        "agent_seconds": _sum("agent_run_finished", "duration_s"),
        "agent_results_accepted": _count("agent_result_accepted"),
        "policy_denials": _count("policy_denied"),
        "access_requested": _count("access_requested"),
        "access_granted": _count("access_granted"),
        "tools_approved": _count("tool_approved"),
        "tools_banned": _count("tool_banned"),
        "tool_uses": _count("tool_used"),
        "reported_users": "COALESCE(MAX(reported_users), 0)",
        "suggestions": "COALESCE(SUM(suggestions), 0)",
        "acceptances": "COALESCE(SUM(acceptances), 0)",
        "usage_cost": "COALESCE(SUM(cost), 0)",
        # what model calls through the gateway used and cost (its `model_call` events)
        "input_tokens": "COALESCE(SUM(input_tokens), 0)",
        "output_tokens": "COALESCE(SUM(output_tokens), 0)",
        "model_cost": "COALESCE(SUM(model_cost), 0)",
    }
    names = ", ".join(columns)
    selects = ", ".join(columns.values())
    return (
        f"INSERT INTO {daily} (day, team_slug, tool_slug, template_slug, {names}) "
        f"SELECT day, team_slug, tool_slug, template_slug, {selects} FROM {ev} "
        f"WHERE day IN ({placeholders}) GROUP BY day, team_slug, tool_slug, template_slug"
    )


def _rebuild_days(days: list[dt.date], now: dt.datetime | None = None) -> None:
    ev = UsageEvent._meta.db_table
    active = ", ".join(f"'{k}'" for k in sorted(ACTIVE_KINDS))
    for i in range(0, len(days), DAY_CHUNK):
        chunk = days[i : i + DAY_CHUNK]
        ph = ", ".join(["%s"] * len(chunk))
        with connection.cursor() as cur:
            for model in (UsageDaily, UsageUserDay, UsageReadyBucket):
                cur.execute(f"DELETE FROM {model._meta.db_table} WHERE day IN ({ph})", chunk)
            cur.execute(_daily_sql(ph), chunk)
            cur.execute(
                f"INSERT INTO {UsageUserDay._meta.db_table} (day, team_slug, tool_slug, user_ref, events) "
                f"SELECT day, team_slug, tool_slug, user_ref, COUNT(*) FROM {ev} "
                f"WHERE day IN ({ph}) AND kind IN ({active}) AND user_ref <> '' "
                "GROUP BY day, team_slug, tool_slug, user_ref",
                chunk,
            )
            cur.execute(
                f"INSERT INTO {UsageReadyBucket._meta.db_table} (day, team_slug, tool_slug, bucket, count) "
                f"SELECT day, team_slug, tool_slug, {bucket_sql('duration_s')} AS b, COUNT(*) FROM {ev} "
                f"WHERE day IN ({ph}) AND kind = 'build_succeeded' AND duration_s IS NOT NULL "
                "AND outcome IN ('', 'start') GROUP BY day, team_slug, tool_slug, b",
                chunk,
            )
        _merge_first_use(chunk)
        _rebuild_periods(chunk, now)
        if connection.vendor == "postgresql":
            _merge_user_years(chunk)
            merge_day_users(chunk)
    forget_cuts(days, now=now)  # stored cuts holding a rebuilt day (and stale ones)


def _rebuild_periods(days: list[dt.date], now: dt.datetime | None = None) -> None:
    """Re-sum the whole weeks and months that contain the given days from the daily rows, and rewrite their
    stored reports."""
    periods = {(kind, period_of(d, kind)) for d in days for kind in ("week", "month")}
    table = UsagePeriod._meta.db_table
    cols = ", ".join(PERIOD_COLUMNS)
    sums = ", ".join(f"SUM({c})" for c in PERIOD_COLUMNS)
    with connection.cursor() as cur:
        for kind, first in sorted(periods):
            last = period_last_day(kind, first)
            cur.execute(f"DELETE FROM {table} WHERE kind = %s AND start = %s", [kind, first])
            cur.execute(
                f"INSERT INTO {table} (kind, start, team_slug, tool_slug, {cols}, reported_users) "
                f"SELECT %s, %s, team_slug, tool_slug, {sums}, MAX(reported_users) FROM {UsageDaily._meta.db_table} "
                "WHERE day >= %s AND day <= %s GROUP BY team_slug, tool_slug",
                [kind, first, first, last],
            )
            cur.execute(f"DELETE FROM {UsagePeriodBucket._meta.db_table} WHERE kind = %s AND start = %s", [kind, first])
            cur.execute(
                f"INSERT INTO {UsagePeriodBucket._meta.db_table} (kind, start, team_slug, tool_slug, bucket, count) "
                f"SELECT %s, %s, team_slug, tool_slug, bucket, SUM(count) FROM {UsageReadyBucket._meta.db_table} "
                "WHERE day >= %s AND day <= %s GROUP BY team_slug, tool_slug, bucket",
                [kind, first, first, last],
            )
            cur.execute(f"DELETE FROM {UsagePeriodUsers._meta.db_table} WHERE kind = %s AND start = %s", [kind, first])
            cur.execute(_period_users_sql(), _period_users_args(kind, first, last))
            refresh_period_rows(cur, kind, first)
            store_period_report(kind, first, now=now)


def refresh_period_rows(cur, kind: str, start: dt.date) -> None:
    """Store each (team, tool) row of a whole period with its distinct users, median time to ready and the
    static part of its report row, so a report over whole periods only adds today's team sizes and seats;
    and the period's histogram over all teams and tools (team and tool '*')."""
    d = Dialect()
    period, users = UsagePeriod._meta.db_table, UsagePeriodUsers._meta.db_table
    buckets = UsagePeriodBucket._meta.db_table
    # the period's histogram over every team and tool ('*'), for the report's totals line
    cur.execute(f"DELETE FROM {buckets} WHERE kind = %s AND start = %s AND team_slug = '*'", [kind, start])
    cur.execute(
        f"INSERT INTO {buckets} (kind, start, team_slug, tool_slug, bucket, count) "
        f"SELECT kind, start, '*', '*', bucket, SUM(count) FROM {buckets} "
        "WHERE kind = %s AND start = %s GROUP BY kind, start, bucket",
        [kind, start],
    )
    med = median_sql(
        d,
        "SELECT start AS p, team_slug AS team, tool_slug AS tool, bucket, count AS n "
        f"FROM {buckets} WHERE kind = %s AND start = %s AND team_slug <> '*'",
    )
    cols = ", ".join(f"p.{c}" for c in PERIOD_COLUMNS)
    rows = (
        f"SELECT p.id, p.team_slug AS team, p.tool_slug AS tool, {cols}, "
        f"{d.greatest}(COALESCE(u.users, 0), p.reported_users) AS active, med.median FROM {period} p "
        f"LEFT JOIN {users} u ON u.kind = p.kind AND u.start = p.start AND u.team_slug = p.team_slug "
        "AND u.tool_slug = p.tool_slug "
        f"LEFT JOIN ({med}) med ON med.team = p.team_slug AND med.tool = p.tool_slug "
        "WHERE p.kind = %s AND p.start = %s"
    )
    cur.execute(
        f"UPDATE {period} SET active_users = x.active, median_ready_s = x.median, row_json = x.frag "
        f"FROM (SELECT id, active, median, {static_fragment_sql(d)} AS frag FROM ({rows}) q) x WHERE {period}.id = x.id",
        [kind, start, kind, start],
    )


def _period_users_sql() -> str:
    target = f"INSERT INTO {UsagePeriodUsers._meta.db_table} (kind, start, team_slug, tool_slug, users) "
    src = f"FROM {UsageUserDay._meta.db_table} WHERE day >= %s AND day <= %s"
    if connection.vendor == "postgresql":
        return (
            target + "SELECT %s, %s, COALESCE(team_slug, '*'), COALESCE(tool_slug, '*'), COUNT(DISTINCT user_ref) "
            f"{src} GROUP BY GROUPING SETS ((team_slug, tool_slug), (team_slug), (tool_slug), ())"
        )
    parts = [
        f"SELECT %s, %s, team_slug, tool_slug, COUNT(DISTINCT user_ref) {src} GROUP BY team_slug, tool_slug",
        f"SELECT %s, %s, team_slug, '*', COUNT(DISTINCT user_ref) {src} GROUP BY team_slug",
        f"SELECT %s, %s, '*', tool_slug, COUNT(DISTINCT user_ref) {src} GROUP BY tool_slug",
        f"SELECT %s, %s, '*', '*', COUNT(DISTINCT user_ref) {src}",
    ]
    return target + " UNION ALL ".join(parts)


def _period_users_args(kind: str, first: dt.date, last: dt.date) -> list:
    one = [kind, first, first, last]
    return one if connection.vendor == "postgresql" else one * 4


def _merge_user_years(days: list[dt.date]) -> None:
    """PostgreSQL: OR the active-day bits of these days into the per user x year bitmaps. Events are
    append-only, so a bit once set stays set: merging is idempotent and needs no delete."""
    ph = ", ".join(["%s"] * len(days))
    with connection.cursor() as cur:
        cur.execute(
            f"""INSERT INTO {USER_YEAR_TABLE} (year, team_slug, tool_slug, user_ref, days)
            SELECT y, COALESCE(team_slug, '*'), COALESCE(tool_slug, '*'), user_ref, bit_or(bits) FROM (
                SELECT CAST(EXTRACT(YEAR FROM day) AS integer) AS y, team_slug, tool_slug, user_ref,
                       B'1'::bit(366) >> (CAST(EXTRACT(DOY FROM day) AS integer) - 1) AS bits
                FROM {UsageUserDay._meta.db_table} WHERE day IN ({ph})
            ) s
            GROUP BY GROUPING SETS ((y, team_slug, tool_slug, user_ref), (y, team_slug, user_ref),
                                    (y, tool_slug, user_ref), (y, user_ref))
            ON CONFLICT (year, team_slug, tool_slug, user_ref)
            DO UPDATE SET days = {USER_YEAR_TABLE}.days | EXCLUDED.days""",
            days,
        )


BITS_STEP = 1024


def merge_day_users(days: list[dt.date]) -> None:
    """PostgreSQL: rewrite the per day x tool bitmaps of active users (bit i: the user with index i; tool '*'
    folds the tools), so distinct users over a range are a bit_or over a few rows per day. Every bitmap has
    the same length, a multiple of BITS_STEP; new users beyond it widen them all."""
    ph = ", ".join(["%s"] * len(days))
    user_day = UsageUserDay._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {USER_INDEX_TABLE} (user_ref, idx) "
            "SELECT user_ref, base + ROW_NUMBER() OVER (ORDER BY user_ref) - 1 FROM ("
            f"SELECT DISTINCT user_ref FROM {user_day} ud WHERE day IN ({ph}) "
            f"AND NOT EXISTS (SELECT 1 FROM {USER_INDEX_TABLE} ui WHERE ui.user_ref = ud.user_ref)) n "
            f"CROSS JOIN (SELECT COALESCE(MAX(idx) + 1, 0) AS base FROM {USER_INDEX_TABLE}) b",
            days,
        )
        cur.execute(f"SELECT COALESCE(MAX(idx) + 1, 0) FROM {USER_INDEX_TABLE}")
        width = max(1, -(-cur.fetchone()[0] // BITS_STEP)) * BITS_STEP
        cur.execute(f"SELECT length(users) FROM {DAY_USERS_TABLE} LIMIT 1")
        current = cur.fetchone()
        if current and current[0] < width:
            cur.execute(
                f"UPDATE {DAY_USERS_TABLE} SET users = users || CAST(repeat('0', %s - length(users)) AS varbit)",
                [width],
            )
        cur.execute(f"DELETE FROM {DAY_USERS_TABLE} WHERE day IN ({ph})", days)
        cur.execute(
            f"INSERT INTO {DAY_USERS_TABLE} (day, tool_slug, users) "
            f"SELECT day, COALESCE(tool_slug, '*'), bit_or(set_bit(CAST(repeat('0', {width}) AS varbit), idx, 1)) "
            f"FROM {user_day} ud JOIN {USER_INDEX_TABLE} ui ON ui.user_ref = ud.user_ref WHERE day IN ({ph}) "
            "GROUP BY GROUPING SETS ((day, tool_slug), (day))",
            days,
        )


def _merge_first_use(days: list[dt.date]) -> None:
    firsts = (
        UsageDaily.objects.filter(day__in=days, active_events__gt=0)
        .exclude(tool_slug="")
        .exclude(team_slug="")
        .values("team_slug", "tool_slug")
        .annotate(first=Min("day"))
    )
    found = {(r["team_slug"], r["tool_slug"]): r["first"] for r in firsts}
    if not found:
        return
    teams = {t for t, _ in found}
    existing = {
        (f.team_slug, f.tool_slug): f
        for f in UsageFirstUse.objects.filter(team_slug__in=teams)
        if (f.team_slug, f.tool_slug) in found
    }
    new, changed = [], []
    for pair, first in found.items():
        row = existing.get(pair)
        if row is None:
            new.append(UsageFirstUse(team_slug=pair[0], tool_slug=pair[1], first_day=first))
        elif first < row.first_day:
            row.first_day = first
            changed.append(row)
    UsageFirstUse.objects.bulk_create(new, ignore_conflicts=True)
    if changed:
        UsageFirstUse.objects.bulk_update(changed, ["first_day"])


def rollup_usage(*, full: bool = False, now: dt.datetime | None = None) -> dict:
    """Fold new (and late) events into the rollups. Returns what it did; rerunning changes nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        state, _ = RollupState.objects.get_or_create(name="usage")
        state = RollupState.objects.select_for_update().get(pk=state.pk)
        max_id = UsageEvent.objects.aggregate(m=Max("id"))["m"] or 0
        events = UsageEvent.objects.order_by()
        if full:
            days = set(events.values_list("day", flat=True).distinct())
        else:
            days = set(
                events.filter(id__gt=state.last_event_id, id__lte=max_id).values_list("day", flat=True).distinct()
            )
            if state.last_run_at is not None:
                since = state.last_run_at - LOOKBACK
                days |= set(events.filter(ingested_at__gte=since).values_list("day", flat=True).distinct())
        ordered = sorted(days)
        if full:
            for model in (
                UsageDaily,
                UsageUserDay,
                UsageReadyBucket,
                UsagePeriod,
                UsagePeriodBucket,
                UsagePeriodUsers,
                UsagePeriodTotal,
                UsagePeriodCut,
                UsageFirstUse,
            ):
                model.objects.all().delete()
            if connection.vendor == "postgresql":
                with connection.cursor() as cur:
                    cur.execute(f"DELETE FROM {USER_YEAR_TABLE}")
                    cur.execute(f"DELETE FROM {DAY_USERS_TABLE}")
        _rebuild_days(ordered, now)
        _rewrite_old_row_shapes(now, rebuilt=full)
        # periods whose stored report no longer matches today's teams, grants or date
        refreshed = refresh_stored_reports(now=now)
        state.last_event_id = max(max_id, state.last_event_id)
        state.last_run_at = now
        state.last_ingested_at = events.aggregate(m=Max("ingested_at"))["m"]
        state.last_days = [d.isoformat() for d in ordered[-31:]]
        state.save()
    return {"days": len(ordered), "last_event_id": state.last_event_id, "reports_refreshed": refreshed}


def _rewrite_old_row_shapes(now: dt.datetime, *, rebuilt: bool) -> None:
    """Once per ROWS_VERSION: rewrite the stored row fragments and period reports of every period, so rows
    stored before the report gained columns have them too (a full rebuild has just done so)."""
    if RollupState.objects.filter(name=ROWS_VERSION).exists():
        return
    if not rebuilt:
        stored = UsagePeriod.objects.order_by().values_list("kind", "start").distinct()
        with connection.cursor() as cur:
            for kind, start in sorted(set(stored)):
                refresh_period_rows(cur, kind, start)
                store_period_report(kind, start, now=now)
    RollupState.objects.create(name=ROWS_VERSION, last_run_at=now)


def rollup_days(days: Iterable[dt.date]) -> None:
    """Rebuild the given days (used by tests and the benchmark)."""
    with transaction.atomic():
        _rebuild_days(sorted(set(days)))
