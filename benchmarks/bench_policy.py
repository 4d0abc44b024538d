"""Benchmark the policy decision and the usable-tools list (issue 3). Not a timed test.

    python benchmarks/bench_policy.py                 # SQLite scratch file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gp_x python benchmarks/bench_policy.py

Seeds a scratch database (a temporary SQLite file, or `<db>_bench` next to the PostgreSQL database
named by DATABASE_URL, created and dropped here) with 10,000 tools, 200 teams and 2,000 users holding
grants; then measures one `decide` call (p50/p99) and `GET /api/v1/tools/?usable=true` against the same
endpoint unfiltered (requests/s, in-process through Django's WSGI handler with token auth, and queries
per request at two page sizes). Targets: filtered >= 60% of unfiltered throughput; decide p99 < 2 ms.
Options: --tools N --teams N --users N --decisions N --requests N.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import pct, scratch_postgres  # noqa: E402


def scratch_database(url: str | None) -> tuple[str, callable]:
    """A scratch database URL and a cleanup function."""
    if not url or url.startswith("sqlite"):
        folder = tempfile.mkdtemp(prefix="goldpath-bench-")
        path = Path(folder) / "bench.sqlite3"

        def cleanup() -> None:
            for p in Path(folder).glob("*"):
                p.unlink()
            Path(folder).rmdir()

        return f"sqlite:///{path}", cleanup
    return scratch_postgres(url, "bench")


def seed(n_tools: int, n_teams: int, n_users: int, grants_per_team: int, heavy_grants: int, rng: random.Random) -> dict:
    import datetime as dt

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission
    from django.db import transaction
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from catalog.models import AccessGrant, AITool, AIToolGroupObjectPermission, Profile, Team

    User = get_user_model()
    now = timezone.now()
    with transaction.atomic():
        groups = Group.objects.bulk_create([Group(name=f"team:team-{i}") for i in range(n_teams)])
        teams = Team.objects.bulk_create(
            [Team(slug=f"team-{i}", name=f"Team {i}", group=g) for i, g in enumerate(groups)]
        )
        statuses = ["approved"] * 14 + ["deprecated", "in_review", "banned", "proposed", "retired", "rejected"]
        classes = ["public", "internal", "confidential", "restricted"]
        tools = AITool.objects.bulk_create(
            [
                AITool(
                    slug=f"tool-{i}",
                    name=f"Tool {i:05d}",
                    vendor=f"Vendor {i % 97}",
                    kind=rng.choice(["agent", "cli", "ide", "assistant", "mcp_server"]),
                    risk_tier=rng.choice(["low", "medium", "high"]),
                    max_data_classification=rng.choice(classes[1:]),
                    owner_team=teams[0],
                    status=rng.choice(statuses),
                    review_due=(now + dt.timedelta(days=rng.randint(-10, 200))).date(),
                )
                for i in range(n_tools)
            ],
            batch_size=1000,
        )
        users = User.objects.bulk_create(
            [User(username=f"user{i}", email=f"user{i}@example.com", password="!") for i in range(n_users)],
            batch_size=1000,
        )
        Profile.objects.bulk_create([Profile(user=u, role="developer") for u in users], batch_size=1000)
        group_rows = []  # a team's members are the users of its group
        for i, user in enumerate(users):
            team = teams[i % n_teams]
            group_rows.append(User.groups.through(group_id=team.group_id, user_id=user.pk))
        User.groups.through.objects.bulk_create(group_rows, batch_size=2000)
        perm = Permission.objects.get(codename="use_aitool", content_type__app_label="catalog")
        pairs = []
        for index, team in enumerate(teams):
            # team-0 (user0's team, the one the list is measured for) holds many grants, so pages fill up
            for tool in rng.sample(tools, heavy_grants if index == 0 else grants_per_team):
                pairs.append((team, tool))
        perms = AIToolGroupObjectPermission.objects.bulk_create(
            [
                AIToolGroupObjectPermission(group_id=t.group_id, permission=perm, content_object=tool)
                for t, tool in pairs
            ],
            batch_size=2000,
        )
        grants = []
        for (team, tool), row in zip(pairs, perms, strict=True):
            roll = rng.random()
            grants.append(
                AccessGrant(
                    team=team,
                    tool=tool,
                    permission=row,
                    expires_at=(now - dt.timedelta(days=1))
                    if roll < 0.1
                    else (now + dt.timedelta(days=90))
                    if roll < 0.5
                    else None,
                    max_data_classification="internal" if roll > 0.9 else "",
                    seats=rng.randint(1, 50),
                )
            )
        AccessGrant.objects.bulk_create(grants, batch_size=2000)
    token = Token.objects.create(user=users[0])
    from django.db import connection

    with connection.cursor() as cursor:  # fresh planner statistics, as autovacuum/ANALYZE would give
        cursor.execute("ANALYZE")
    return {"users": users, "tools": tools, "token": token.key, "grants": len(grants)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tools", type=int, default=10_000)
    parser.add_argument("--teams", type=int, default=200)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--grants-per-team", type=int, default=25)
    parser.add_argument("--heavy-grants", type=int, default=600, help="grants held by user0's team")
    parser.add_argument("--decisions", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--explain", action="store_true", help="print the usable-tools query plan")
    parser.add_argument("--page-size", type=int, default=50)
    args = parser.parse_args()

    original = os.environ.get("DATABASE_URL")
    url, cleanup = scratch_database(original)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("GOLDPATH_HOME", tempfile.mkdtemp(prefix="goldpath-bench-home-"))
    os.environ.update(
        {
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or "bench-" + "x" * 50,
            "DJANGO_ALLOWED_HOSTS": "testserver,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "GOLDPATH_LOG_LEVEL": "WARNING",
        }
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from catalog.policy import PolicyContext, decide

    try:
        vendor = connection.vendor
        print(f"database: {vendor} (scratch: {url.rsplit('/', 1)[-1]})")
        t0 = time.perf_counter()
        call_command("migrate", verbosity=0)
        rng = random.Random(42)
        data = seed(args.tools, args.teams, args.users, args.grants_per_team, args.heavy_grants, rng)
        print(
            f"seeded {args.tools} tools, {args.teams} teams, {args.users} users, {data['grants']} grants "
            f"in {time.perf_counter() - t0:.1f}s"
        )
        users, tools = data["users"], data["tools"]
        ctx = PolicyContext("internal")
        for _ in range(200):  # warm up
            decide(rng.choice(users), rng.choice(tools), ctx)
        timings, allowed = [], 0
        for _ in range(args.decisions):
            user, tool = rng.choice(users), rng.choice(tools)
            start = time.perf_counter()
            decision = decide(user, tool, ctx)
            timings.append((time.perf_counter() - start) * 1000)
            allowed += decision.allowed
        # the same, over pairs that hold a grant (the path that reads a grant row)
        from catalog.models import AccessGrant

        held = list(AccessGrant.objects.values_list("team__group__user", "tool_id")[:2000])
        by_id = {u.pk: u for u in users}
        tool_by_id = {t.pk: t for t in tools}
        granted_timings = []
        for user_id, tool_id in held[: args.decisions]:
            start = time.perf_counter()
            decide(by_id[user_id], tool_by_id[tool_id], ctx)
            granted_timings.append((time.perf_counter() - start) * 1000)
        p50, p99 = statistics.median(timings), pct(timings, 99)
        print(
            f"decide (random pairs, {args.decisions}, {allowed} allowed): p50 {p50:.3f} ms  p99 {p99:.3f} ms  "
            f"(target p99 < 2 ms: {'ok' if p99 < 2 else 'MISSED'})"
        )
        if granted_timings:
            print(
                f"decide (granted pairs, {len(granted_timings)}): p50 {statistics.median(granted_timings):.3f} ms  "
                f"p99 {pct(granted_timings, 99):.3f} ms"
            )

        client = Client(HTTP_AUTHORIZATION=f"Token {data['token']}")
        base = f"/api/v1/tools/?page_size={args.page_size}"

        def queries(path: str) -> int:
            with CaptureQueriesContext(connection) as q:
                response = client.get(path)
            assert response.status_code == 200, response.content[:300]
            return len(q)

        def throughput(path: str) -> tuple[float, int]:
            for _ in range(10):
                client.get(path)
            start = time.perf_counter()
            for _ in range(args.requests):
                response = client.get(path)
            elapsed = time.perf_counter() - start
            reset_queries()
            return args.requests / elapsed, response.json()["count"]

        if args.explain:
            from catalog.api.tools import tool_queryset
            from catalog.selectors import usable_tools

            qs = usable_tools(users[0], tool_queryset().order_by("name", "id"))
            print(qs.explain(analyze=True) if vendor == "postgresql" else qs.explain())
            print(qs.count())
        q_all = {size: queries(f"/api/v1/tools/?page_size={size}") for size in (10, 200)}
        q_use = {size: queries(f"/api/v1/tools/?usable=true&page_size={size}") for size in (10, 200)}
        rps_all, count_all = throughput(base)
        rps_use, count_use = throughput(base + "&usable=true")
        ratio = rps_use / rps_all
        print(
            f"GET /api/v1/tools/ (page_size={args.page_size}, {count_all} tools): {rps_all:.1f} req/s; queries/request {q_all[10]} at page_size 10, {q_all[200]} at 200"
        )
        print(
            f"GET /api/v1/tools/?usable=true ({count_use} usable for user0): {rps_use:.1f} req/s; queries/request {q_use[10]} at page_size 10, {q_use[200]} at 200"
        )
        print(f"ratio usable/unfiltered throughput: {ratio:.0%} (target >= 60%: {'ok' if ratio >= 0.6 else 'MISSED'})")
    finally:
        cleanup()


if __name__ == "__main__":
    main()
