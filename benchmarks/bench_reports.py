"""Benchmark the adoption report (issue 6) on PostgreSQL. Not a timed test.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gp_reports python benchmarks/bench_reports.py
    ... --events 1000000        # a smaller run (generating and rolling up 10 M events takes a while on
                                # a small machine; the report's cost grows with teams x tools, not events)

Creates a scratch database (`<db>_bench_reports`, dropped at the end), generates N usage events (default
10 million) over the last year for 200 teams x 10 users and 40 tools with one server-side
`INSERT ... SELECT generate_series(...)` per million rows, builds the rollups, then measures (p50/p95
over 20 runs):
  - the report for one team over 12 whole weeks and for all teams over 4 whole weeks (weekly; the shape of
    the report's default range), and for all teams over 4 weeks starting on a Thursday, read from the
    rollups (`catalog.reports.adoption.adoption_report`, the function the API calls); over every team it
    reads the whole periods from the stored period reports and computes only the days of a period the
    range cuts (the Thursday case's first week), so each case is also measured computed live
    (`stored=False`) and the two reports compared;
  - the API request end to end (sign-in session, the report, the JSON response) for the all-teams cases;
  - the Thursday case twice: its first request (the cut week's days computed live, which asks a worker to
    store the cut) and every later one (the cut read from its stored report, as the worker wrote it);
  - the same numbers computed by a plain GROUP BY over the raw events (sums + distinct users), as a ratio;
  - the incremental rollup for one new day of events (N/365 rows), and its rerun.
Target: p95 under 50 ms for both report queries.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import pct, scratch_postgres  # noqa: E402

WORKSPACE_KINDS = "('workspace_created', 'workspace_started', 'workspace_stopped', 'build_succeeded', 'build_failed')"


def generate_sql(table: str, *, teams: int, users: int, tools: int, days: int, start: dt.date, fixed_day: bool) -> str:
    """One INSERT ... SELECT over generate_series(%s, %s): users belong to team u % teams and mostly use two
    of their team's six tools; kinds follow a plausible mix; ingest time = event time (+1 min)."""
    day_expr = "0" if fixed_day else f"floor(random() * {days})::int"
    ingested = "now()" if fixed_day else "at + interval '1 minute'"
    return f"""
    INSERT INTO {table} (at, day, ingested_at, kind, user_ref, team_slug, tool_slug, template_slug, outcome,
                         duration_s, cost, source, key)
    SELECT at, (at AT TIME ZONE 'UTC')::date, {ingested}, kind, 'user-' || u, 'team-' || (u %% {teams}),
      CASE WHEN kind IN {WORKSPACE_KINDS} THEN '' ELSE 'tool-' || (((u %% {teams}) * 7 + tj) %% {tools}) END,
      CASE WHEN kind IN {WORKSPACE_KINDS} THEN 'tpl-' || ((u %% {teams}) %% 8) ELSE '' END,
      CASE WHEN kind = 'agent_run_finished' THEN (CASE WHEN r2 < 0.8 THEN 'succeeded' ELSE 'failed' END)
           WHEN kind IN ('build_succeeded', 'build_failed') THEN 'start' ELSE '' END,
      CASE WHEN kind = 'agent_run_finished' THEN 30 + r2 * 900
           WHEN kind IN ('build_succeeded', 'build_failed') THEN 20 + r2 * 200 END,
      CASE WHEN kind = 'agent_run_finished' AND tj %% 3 = 0 THEN 0.05 END,
      'bench', %s || i
    FROM (
      SELECT i, u, r2,
        CASE WHEN r3 < 0.9 THEN ((u / {teams}) + (CASE WHEN r3 < 0.45 THEN 0 ELSE 1 END)) %% 6
             ELSE floor(r3 * 60)::int %% 6 END AS tj,
        TIMESTAMPTZ %s + d * interval '1 day' + random() * interval '86399 seconds' AS at,
        CASE WHEN r < 0.28 THEN 'agent_run_started' WHEN r < 0.56 THEN 'agent_run_finished'
             WHEN r < 0.64 THEN 'agent_result_accepted' WHEN r < 0.80 THEN 'tool_used'
             WHEN r < 0.84 THEN 'workspace_created' WHEN r < 0.88 THEN 'workspace_started'
             WHEN r < 0.92 THEN 'build_succeeded' WHEN r < 0.94 THEN 'build_failed'
             WHEN r < 0.96 THEN 'workspace_stopped' WHEN r < 0.98 THEN 'tool_enabled'
             WHEN r < 0.99 THEN 'policy_denied' ELSE 'access_requested' END AS kind
      FROM (SELECT i, floor(random() * {users})::int AS u, {day_expr} AS d, random() AS r, random() AS r2,
                   random() AS r3 FROM generate_series(%s, %s) i) a
    ) s
    """


def seed_org(teams: int, users: int, tools: int, start: dt.date) -> None:
    """Teams with members, tools with prices, and three paid grants per team (reports cost them)."""
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import transaction

    from catalog.models import AccessGrant, AITool, Team

    User = get_user_model()
    with transaction.atomic():
        groups = Group.objects.bulk_create([Group(name=f"team:team-{i}") for i in range(teams)])
        team_rows = Team.objects.bulk_create(
            [Team(slug=f"team-{i}", name=f"Team {i}", group=g) for i, g in enumerate(groups)]
        )
        user_rows = User.objects.bulk_create([User(username=f"user-{u}") for u in range(users)])
        Membership = User.groups.through  # a team's members are the users of its group
        Membership.objects.bulk_create(
            [Membership(group_id=team_rows[u % teams].group_id, user_id=user_rows[u].pk) for u in range(users)]
        )
        tool_rows = AITool.objects.bulk_create(
            [
                AITool(
                    slug=f"tool-{t}",
                    name=f"Tool {t}",
                    vendor="Acme",
                    kind="agent",
                    risk_tier="medium",
                    max_data_classification="internal",
                    owner_team=team_rows[0],
                    status="approved",
                    monthly_price_per_seat=Decimal(10 + (t % 5) * 10),
                )
                for t in range(tools)
            ]
        )
        grants = []
        for k, team in enumerate(team_rows):
            for j in range(3):
                grants.append(AccessGrant(team=team, tool=tool_rows[(k * 7 + j) % tools], seats=5 + j))
        AccessGrant.objects.bulk_create(grants)
        AccessGrant.objects.update(created_at=dt.datetime.combine(start, dt.time.min, tzinfo=dt.UTC))


def raw_report(cur, *, date_from: dt.date, date_to: dt.date, team: str | None) -> dict:
    """The same numbers by a plain GROUP BY over raw events: sums per week x team x tool, and distinct
    active users per week x team x tool plus over the whole range."""
    from catalog.models import ACTIVE_KINDS

    active = ", ".join(f"'{k}'" for k in sorted(ACTIVE_KINDS))
    where = "day >= %s AND day <= %s" + (" AND team_slug = %s" if team else "")
    args = [date_from, date_to] + ([team] if team else [])
    cur.execute(
        f"""SELECT CAST(date_trunc('week', day) AS date) p, team_slug, tool_slug,
               SUM(CASE WHEN kind = 'workspace_created' THEN 1 ELSE 0 END),
               SUM(CASE WHEN kind = 'build_succeeded' THEN 1 ELSE 0 END),
               SUM(CASE WHEN kind = 'build_failed' THEN 1 ELSE 0 END),
               SUM(CASE WHEN kind = 'agent_run_started' THEN 1 ELSE 0 END),
               SUM(CASE WHEN kind = 'agent_run_finished' THEN 1 ELSE 0 END),
               SUM(CASE WHEN kind = 'agent_result_accepted' THEN 1 ELSE 0 END),
               SUM(CASE WHEN kind = 'policy_denied' THEN 1 ELSE 0 END),
               COALESCE(SUM(cost), 0),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY CASE WHEN kind = 'build_succeeded' THEN duration_s END)
           FROM catalog_usageevent WHERE {where} GROUP BY 1, 2, 3""",
        args,
    )
    sums = {(r[0], r[1], r[2]): r[3:] for r in cur.fetchall()}
    cur.execute(
        f"""SELECT p, team_slug, tool_slug, GROUPING(p, team_slug, tool_slug), COUNT(DISTINCT user_ref)
           FROM (SELECT CAST(date_trunc('week', day) AS date) p, team_slug, tool_slug, user_ref
                 FROM catalog_usageevent WHERE {where} AND kind IN ({active}) AND user_ref <> '') s
           GROUP BY GROUPING SETS ((p, team_slug, tool_slug), (p, tool_slug), (p, team_slug), (tool_slug), ())""",
        args,
    )
    users = {(r[0], r[1], r[2], r[3]): r[4] for r in cur.fetchall()}
    return {"sums": sums, "users": users}


def timed(fn, runs: int) -> list[float]:
    fn()  # warm
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--teams", type=int, default=200)
    parser.add_argument("--users-per-team", type=int, default=10)
    parser.add_argument("--tools", type=int, default=40)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--raw-runs", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    original = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/gp_reports"
    if not original.startswith("postgres"):
        sys.exit("This benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    url, cleanup = scratch_postgres(original, "bench_reports")
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("GOLDPATH_HOME", tempfile.mkdtemp(prefix="goldpath-bench-home-"))
    os.environ["GOLDPATH_LOG_LEVEL"] = "WARNING"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from catalog.models import RollupState, UsageDaily, UsageEvent, UsageUserDay
    from catalog.reports.adoption import adoption_report, report_json
    from catalog.reports.params import ReportParams
    from catalog.reports.rollup import rollup_usage

    class Reader:
        is_authenticated = True
        is_superuser = True
        is_active = True
        pk = None

    users = args.teams * args.users_per_team
    today = dt.date.today()
    start = today - dt.timedelta(days=args.days)
    table = UsageEvent._meta.db_table
    try:
        print(
            f"scratch database {url.rsplit('/', 1)[-1]} on {connection.vendor}; {args.events:,} events, "
            f"{args.teams} teams x {args.users_per_team} users, {args.tools} tools, {args.days} days"
        )
        call_command("migrate", verbosity=0)
        seed_org(args.teams, users, args.tools, start)
        t0 = time.perf_counter()
        with connection.cursor() as cur:
            cur.execute("SET synchronous_commit = off")
            cur.execute("SET maintenance_work_mem = '256MB'")
            cur.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT LIKE %s",
                [table, "%pkey"],
            )
            indexes = cur.fetchall()
            cur.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'u'", [table])
            for (con,) in cur.fetchall():
                cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{con}"')
            for name, _ in indexes:
                cur.execute(f'DROP INDEX IF EXISTS "{name}"')
            sql = generate_sql(
                table, teams=args.teams, users=users, tools=args.tools, days=args.days, start=start, fixed_day=False
            )
            chunk = 1_000_000
            for lo in range(1, args.events + 1, chunk):
                hi = min(args.events, lo + chunk - 1)
                cur.execute(sql, ["bench:", start.isoformat(), lo, hi])
                print(f"  generated {hi:,} events ({time.perf_counter() - t0:.0f} s)", flush=True)
            for _name, definition in indexes:
                cur.execute(definition)
            cur.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {table}_key_uniq UNIQUE USING INDEX "
                f"{[n for n, d in indexes if 'UNIQUE' in d][0]}"
            )
            cur.execute(f"VACUUM ANALYZE {table}")
        gen_s = time.perf_counter() - t0
        print(f"generated and indexed {args.events:,} events in {gen_s:.0f} s")

        t0 = time.perf_counter()
        rollup_usage(full=True)
        build_s = time.perf_counter() - t0
        with connection.cursor() as cur:
            for model in (
                "usagedaily",
                "usageuserday",
                "usagereadybucket",
                "usagefirstuse",
                "usageperiod",
                "usageuseryear",
                "usageperiodtotal",
                "usagedayusers",
            ):
                cur.execute(f"VACUUM ANALYZE catalog_{model}")
        print(
            f"built rollups in {build_s:.0f} s: {UsageDaily.objects.count():,} day x team x tool x template rows, "
            f"{UsageUserDay.objects.count():,} user-day rows"
        )

        reader = Reader()
        monday = today - dt.timedelta(days=today.weekday())
        # the report's own default shape: whole weeks, this week to date included (read from stored rows) ...
        one_team = ReportParams(
            date_from=monday - dt.timedelta(weeks=11), date_to=today, granularity="week", team="team-7"
        )
        all_teams = ReportParams(date_from=monday - dt.timedelta(weeks=3), date_to=today, granularity="week")
        # ... and a rolling window starting mid-week: its first week's days computed live, the rest stored
        rolling = ReportParams(
            date_from=monday - dt.timedelta(weeks=3) + dt.timedelta(days=3), date_to=today, granularity="week"
        )
        results = {}
        cases = (
            ("one team, 12 whole weeks", one_team),
            ("all teams, 4 whole weeks", all_teams),
            ("all teams, 4 weeks from a Thursday, first request (cut days live)", rolling),
            ("all teams, 4 weeks from a Thursday, cut stored", rolling),
        )
        from django.test.utils import CaptureQueriesContext

        from catalog.reports.cuts import store_cut_report
        from catalog.reports.periods import periods, whole_periods

        for label, params in cases:
            if "cut stored" in label:
                # what the worker does once the first request asked for it
                plist = periods(params)
                whole, _ = whole_periods(params, plist, today)
                for _key, first, last in (p for p in plist if p[0] not in whole):
                    t0 = time.perf_counter()
                    store_cut_report(params.granularity, first, last)
                    print(f"  the worker stored the cut {first}..{last} in {(time.perf_counter() - t0) * 1000:.0f} ms")
            report = adoption_report(reader, params)
            with CaptureQueriesContext(connection) as queries:
                adoption_report(reader, params)
            statement = " ".join(q["sql"] for q in queries if q["sql"].startswith("WITH"))
            from_stored = "row_json" not in statement
            source = "stored period reports" if from_stored else "computed live"
            if from_stored and "catalog_usagedaily" in statement:
                source += ", cut days live"
            elif from_stored and "cut" in label:
                source += " and the stored cut"
            rollup_ms = timed(lambda p=params: adoption_report(reader, p), args.runs)
            live_ms = timed(lambda p=params: adoption_report(reader, p, stored=False), args.runs)
            live_report = adoption_report(reader, params, stored=False)
            same = report_json(report).replace(report["generated_at"], "") == report_json(live_report).replace(
                live_report["generated_at"], ""
            )
            with connection.cursor() as cur:
                raw = raw_report(cur, date_from=params.date_from, date_to=params.date_to, team=params.team)
                raw_ms = timed(
                    lambda p=params, c=cur: raw_report(c, date_from=p.date_from, date_to=p.date_to, team=p.team),
                    args.raw_runs,
                )
            # the two agree: agent runs and active users per week x team x tool
            mismatches = 0
            for row in report["rows"]:
                key = (dt.date.fromisoformat(row["period_start"]), row["team"], row["tool"])
                week = key[0] - dt.timedelta(days=key[0].weekday())
                raw_sums = raw["sums"].get((week, key[1], key[2]))
                raw_users = raw["users"].get((week, key[1], key[2], 0), 0)
                if raw_sums is None and not row["agent_runs"]:
                    continue
                if raw_sums is None or raw_sums[3] != row["agent_runs"] or raw_users != row["active_users"]:
                    mismatches += 1
            total_users = raw["users"].get((None, None, None, 7), 0)
            agree = mismatches == 0 and total_users == report["totals"]["active_users"]
            results[label] = (rollup_ms, raw_ms)
            print(
                f"{label}: {len(report['rows'])} rows; rollups p50 {statistics.median(rollup_ms):.1f} ms, "
                f"p95 {pct(rollup_ms, 95):.1f} ms ({source}; "
                f"computed live: p50 {statistics.median(live_ms):.1f} ms, p95 {pct(live_ms, 95):.1f} ms, "
                f"same report: {'yes' if same else 'NO'}); raw GROUP BY p50 {statistics.median(raw_ms):.1f} ms, "
                f"p95 {pct(raw_ms, 95):.1f} ms; ratio raw/rollup (p50) {statistics.median(raw_ms) / statistics.median(rollup_ms):.1f}x; "
                f"numbers agree: {'yes' if agree else f'NO ({mismatches} rows)'}; active users {report['totals']['active_users']}",
                flush=True,
            )

        # the API request end to end (auth, query, JSON response), as an auditor
        from django.contrib.auth import get_user_model
        from django.test import Client

        from catalog.models import Profile, Role

        auditor = get_user_model().objects.create(username="bench-auditor")
        Profile.objects.update_or_create(user=auditor, defaults={"role": Role.AUDITOR})
        client = Client(HTTP_HOST="localhost")
        client.force_login(auditor)
        for label, params in cases[1:]:
            if "first request" in label:
                continue  # the cut is stored by now
            query = {"from": params.date_from.isoformat(), "to": params.date_to.isoformat()}

            def get(q=query) -> None:
                response = client.get("/api/v1/reports/adoption/", q, HTTP_ACCEPT="application/json")
                assert response.status_code == 200, response.content[:300]

            api_ms = timed(get, args.runs)
            size = len(client.get("/api/v1/reports/adoption/", query, HTTP_ACCEPT="application/json").content)
            print(
                f"GET /api/v1/reports/adoption/ ({label}, {size / 1e6:.1f} MB of JSON): "
                f"p50 {statistics.median(api_ms):.1f} ms, p95 {pct(api_ms, 95):.1f} ms",
                flush=True,
            )

        # incremental: one more day of events (today), then the rollup task's work, then its rerun
        per_day = max(1, args.events // args.days)
        state = RollupState.objects.get(name="usage")
        RollupState.objects.filter(pk=state.pk).update(last_run_at=dt.datetime.now(dt.UTC))
        with connection.cursor() as cur:
            sql = generate_sql(
                table, teams=args.teams, users=users, tools=args.tools, days=args.days, start=today, fixed_day=True
            )
            cur.execute(sql, ["late:", today.isoformat(), 1, per_day])
        t0 = time.perf_counter()
        done = rollup_usage()
        inc_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        rollup_usage()
        rerun_ms = (time.perf_counter() - t0) * 1000
        print(
            f"incremental rollup of one new day ({per_day:,} events, {done['days']} day rebuilt, its week and month "
            f"stored anew): {inc_ms:.0f} ms; "
            f"rerun (same day again, inside the lookback): {rerun_ms:.0f} ms"
        )
        for label, (rollup_ms, _raw) in results.items():
            print(f"target p95 < 50 ms, {label}: {'met' if pct(rollup_ms, 95) < 50 else 'NOT met'}")
    finally:
        if args.keep:
            print(f"kept {url}")
        else:
            cleanup()


if __name__ == "__main__":
    main()
