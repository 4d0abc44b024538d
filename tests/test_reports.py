"""Usage events, imports, rollups and the adoption report (issue 6)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from catalog.models import (
    AccessGrant,
    AuditEvent,
    RollupState,
    UsageDaily,
    UsageEvent,
    UsageFirstUse,
    UsagePeriod,
    UsagePeriodTotal,
    UsageReadyBucket,
    UsageUserDay,
)
from catalog.reports.rollup import rollup_usage
from catalog.reports.rowsql import ROW_FIELDS
from catalog.services import access as access_services
from catalog.services import tools as tool_services
from catalog.usage import record_usage
from tests.factories import ToolFactory, UserFactory

pytestmark = pytest.mark.django_db

REPORT = "/api/v1/reports/adoption/"
IMPORT = "/api/v1/usage-events/import/"
METRICS = [
    "active_users",
    "adoption_rate",
    "workspaces_created",
    "build_success_rate",
    "median_time_to_ready_s",
    "agent_runs",
    "agent_acceptance_rate",
    "policy_denials",
    "estimated_cost",
]


def at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def monday(weeks_ago: int = 1) -> dt.date:
    today = timezone.now().date()
    return today - dt.timedelta(days=today.weekday()) - dt.timedelta(weeks=weeks_ago)


def snapshot() -> dict:
    return {
        "daily": sorted(
            UsageDaily.objects.values_list("day", "team_slug", "tool_slug", "template_slug", "events", "agent_runs")
        ),
        "users": sorted(UsageUserDay.objects.values_list("day", "team_slug", "tool_slug", "user_ref", "events")),
        "ready": sorted(UsageReadyBucket.objects.values_list("day", "team_slug", "tool_slug", "bucket", "count")),
        "first": sorted(UsageFirstUse.objects.values_list("team_slug", "tool_slug", "first_day")),
        "periods": sorted(
            UsagePeriod.objects.values_list(
                "kind", "start", "team_slug", "tool_slug", "agent_runs", "active_users", "median_ready_s", "row_json"
            )
        ),
        "totals": sorted(
            UsagePeriodTotal.objects.values_list(
                "kind",
                "start",
                "team_slug",
                "tool_slug",
                "agent_runs",
                "seat_cost",
                "active_users",
                "last_day",
                "inputs_key",
                "rows_json",
            )
        ),
    }


@pytest.fixture
def claude(people):
    return ToolFactory(slug="claude-code", status="approved", monthly_price_per_seat=Decimal("30.00"))


# --- events -------------------------------------------------------------------------------------


def test_usage_events_are_append_only(people, claude):
    event = record_usage("agent_run_started", user=people["alice"], tool=claude, key="run:1:started")
    assert event.team_slug == "payments" and event.tool_slug == "claude-code" and event.source == "portal"
    event.outcome = "changed"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        UsageEvent.objects.filter(pk=event.pk).update(outcome="x")
    with pytest.raises(PermissionError):
        UsageEvent.objects.all().delete()
    assert UsageEvent.objects.get(pk=event.pk).outcome == ""
    # the same key twice stores one fact
    assert record_usage("agent_run_started", user=people["alice"], tool=claude, key="run:1:started") is None
    assert UsageEvent.objects.count() == 1


def test_services_record_usage_in_their_transaction(people, teams):
    tool = ToolFactory(slug="aider", status="in_review", proposed_by=people["alice"])
    tool_services.tool_approve(tool=tool, actor=people["bob"], reason="ok")
    req = access_services.access_request_create(
        actor=people["alice"], tool=tool, team=teams["payments"], justification="pairing"
    )
    access_services.access_request_approve(access_request=req, actor=people["bob"], seats=3)
    from catalog.policy import PolicyContext

    decision = access_services.tool_use_record(people["dave"], tool, PolicyContext())
    assert not decision.allowed
    tool_services.tool_ban(tool=tool, actor=people["frank"], reason="leak")
    kinds = list(UsageEvent.objects.order_by("id").values_list("kind", "team_slug", "tool_slug", "user_ref"))
    assert kinds == [
        ("tool_approved", "platform", "aider", "bob"),
        ("access_requested", "payments", "aider", "alice"),
        ("access_granted", "payments", "aider", "bob"),
        ("policy_denied", "search", "aider", "dave"),
        ("tool_banned", "platform", "aider", "frank"),
    ]
    # a refused action records nothing
    before = UsageEvent.objects.count()
    with pytest.raises(Exception):  # noqa: B017 - NotPermitted
        tool_services.tool_ban(tool=tool, actor=people["alice"], reason="x")
    assert UsageEvent.objects.count() == before


# --- import -------------------------------------------------------------------------------------

CSV_OK = """occurred_at,kind,tool,team,user,duration_s,cost,key
{d1}T09:00:00Z,tool_used,cursor,payments,alice,,0.50,c-1
{d1}T10:00:00Z,tool_used,cursor,payments,vendor-user-7,,,
{d2},agent_run_finished,cursor,search,dave@example.com,120,0.25,
"""

CSV_BAD = """occurred_at,kind,tool,team,user
2026-01-05,tool_used,cursor,payments,alice
2026-13-40,tool_used,cursor,payments,alice
2026-01-06,exploded,Cursor!,payments,alice
2026-01-07,tool_used,cursor,nowhere,alice
"""


def _post(client, body: str, name: str, **params):
    upload = io.BytesIO(body.encode())
    upload.name = name
    return client.post(
        IMPORT + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""),
        {"file": upload},
        format="multipart",
    )


def test_import_csv_is_idempotent_and_shows_in_the_report(people, api):
    d1, d2 = monday(1), monday(1) + dt.timedelta(days=1)
    people["dave"].email = "dave@example.com"
    people["dave"].save()
    body = CSV_OK.format(d1=d1, d2=d2)
    first = _post(api(people["bob"]), body, "cursor.csv", source="cursor-admin")
    assert first.status_code == 201, first.content
    assert first.json() == {"source": "import:cursor-admin", "format": "csv", "rows": 3, "created": 3, "duplicates": 0}
    again = _post(api(people["bob"]), body, "cursor.csv", source="cursor-admin")
    assert again.status_code == 200 and again.json()["created"] == 0 and again.json()["duplicates"] == 3
    assert UsageEvent.objects.count() == 3
    dave_row = UsageEvent.objects.get(kind="agent_run_finished")
    assert (dave_row.user_ref, dave_row.team_slug, dave_row.duration_s) == ("dave", "search", 120.0)
    assert AuditEvent.objects.filter(verb="usage.imported").count() == 2
    rollup_usage()
    report = api(people["erin"]).get(REPORT, {"from": d1, "to": d2 + dt.timedelta(days=5), "tool": "cursor"}).json()
    by_team = {r["team"]: r for r in report["rows"]}
    assert by_team["payments"]["active_users"] == 2  # alice and the vendor-only user
    assert by_team["payments"]["usage_cost"] == 0.5
    assert by_team["search"]["active_users"] == 1


def test_import_reports_bad_rows_by_line_and_imports_nothing(people, api):
    response = _post(api(people["bob"]), CSV_BAD, "bad.csv")
    assert response.status_code == 400
    lines = response.json()["lines"]
    assert {(e["line"], e["field"]) for e in lines} == {(3, "occurred_at"), (4, "kind"), (4, "tool"), (5, "team")}
    assert not UsageEvent.objects.exists()
    header = _post(api(people["bob"]), "when,tool\n2026-01-01,x\n", "bad.csv")
    assert header.status_code == 400 and header.json()["lines"][0]["line"] == 1
    assert not UsageEvent.objects.exists()


def test_import_is_for_platform_engineers_only(people, api):
    for who in ("alice", "carol", "erin"):
        response = _post(api(people[who]), CSV_OK.format(d1="2026-01-05", d2="2026-01-06"), "x.csv")
        assert response.status_code == 403, who
    assert api().post(IMPORT, {}).status_code == 401
    assert not UsageEvent.objects.exists()


def copilot_day(date: dt.date, active: int, engaged: int) -> dict:
    return {
        "date": date.isoformat(),
        "total_active_users": active,
        "total_engaged_users": engaged,
        "copilot_ide_code_completions": {
            "total_engaged_users": engaged,
            "languages": [{"name": "python", "total_engaged_users": engaged}],
            "editors": [
                {
                    "name": "vscode",
                    "total_engaged_users": engaged,
                    "models": [
                        {
                            "name": "default",
                            "is_custom_model": False,
                            "custom_model_training_date": None,
                            "total_engaged_users": engaged,
                            "languages": [
                                {
                                    "name": "python",
                                    "total_engaged_users": engaged,
                                    "total_code_suggestions": 100,
                                    "total_code_acceptances": 30,
                                    "total_code_lines_suggested": 200,
                                    "total_code_lines_accepted": 60,
                                },
                                {
                                    "name": "go",
                                    "total_engaged_users": 1,
                                    "total_code_suggestions": 20,
                                    "total_code_acceptances": 5,
                                    "total_code_lines_suggested": 40,
                                    "total_code_lines_accepted": 9,
                                },
                            ],
                        }
                    ],
                }
            ],
        },
        "copilot_ide_chat": {"total_engaged_users": 1, "editors": []},
        "copilot_dotcom_chat": {"total_engaged_users": 0, "models": []},
        "copilot_dotcom_pull_requests": {"total_engaged_users": 0, "repositories": []},
    }


def test_import_copilot_metrics_json(people, api):
    d1 = monday(1)
    body = json.dumps([copilot_day(d1, 3, 2), copilot_day(d1 + dt.timedelta(days=1), 4, 3)])
    first = _post(api(people["bob"]), body, "metrics.json", team="payments")
    assert first.status_code == 201, first.content
    assert first.json()["created"] == 2 and first.json()["source"] == "import:copilot"
    assert _post(api(people["bob"]), body, "metrics.json", team="payments").json()["created"] == 0
    event = UsageEvent.objects.get(day=d1)
    assert (event.tool_slug, event.team_slug, event.reported_users, event.engaged_users) == (
        "github-copilot",
        "payments",
        3,
        2,
    )
    assert (event.suggestions, event.acceptances) == (120, 35)
    bad = _post(api(people["bob"]), json.dumps([copilot_day(d1, 1, 1), {"date": "yesterday"}]), "m.json")
    assert bad.status_code == 400 and bad.json()["lines"][0]["line"] == 2
    assert UsageEvent.objects.count() == 2
    rollup_usage()
    report = api(people["carol"]).get(REPORT, {"from": d1, "to": d1 + dt.timedelta(days=6), "team": "payments"}).json()
    [row] = [r for r in report["rows"] if r["tool"] == "github-copilot"]
    assert row["active_users"] == 4  # the peak day: the vendor reports no user ids
    assert row["code_suggestions"] == 240 and row["code_acceptances"] == 70


# --- rollups ------------------------------------------------------------------------------------


def test_rollup_is_incremental_counts_late_events_and_reruns_change_nothing(people, claude):
    d = monday(2)
    for i in range(3):
        record_usage("agent_run_started", user=people["alice"], tool=claude, at=at(d), key=f"r{i}")
    record_usage("build_succeeded", user=people["alice"], at=at(d), duration_s=42.3, outcome="start", key="b1")
    first = rollup_usage()
    assert first["days"] == 1
    snap = snapshot()
    assert UsageDaily.objects.get(day=d, tool_slug="claude-code").agent_runs == 3
    assert rollup_usage()["days"] >= 0 and snapshot() == snap  # rerun: nothing changes
    # a late event for an old day, and the same event re-imported
    old = d - dt.timedelta(days=30)
    record_usage("agent_run_started", user=people["alice"], tool=claude, at=at(old), key="late-1")
    record_usage("agent_run_started", user=people["alice"], tool=claude, at=at(old), key="late-1")
    rollup_usage()
    assert UsageDaily.objects.get(day=old, tool_slug="claude-code").agent_runs == 1
    assert UsageFirstUse.objects.get(team_slug="payments", tool_slug="claude-code").first_day == old
    assert UsageDaily.objects.get(day=d, tool_slug="claude-code").agent_runs == 3
    snap = snapshot()
    rollup_usage()
    assert snapshot() == snap


def test_migration_fills_stored_report_rows_of_periods_rolled_up_before_it(people, claude):
    """Periods rolled up by an older version have no stored row; migration 0008 computes the same ones the
    rollup now writes."""
    import importlib
    from types import SimpleNamespace

    from django.apps import apps
    from django.db import connection

    record_usage("agent_run_started", user=people["alice"], tool=claude, at=at(monday(2)), key="r1")
    record_usage("build_succeeded", user=people["alice"], at=at(monday(2)), duration_s=12, outcome="start", key="b1")
    rollup_usage()
    snap = snapshot()
    assert all(row[-1] for row in snap["periods"])  # every period row has its JSON
    UsagePeriod.objects.update(active_users=None, median_ready_s=None, row_json=None)
    migration = importlib.import_module("catalog.migrations.0008_usage_period_rows")
    migration.fill_period_rows(apps, SimpleNamespace(connection=connection))  # it needs only the connection
    assert snapshot() == snap


def test_migration_fills_the_day_user_bitmaps_of_days_rolled_up_before_it(people, claude):
    """PostgreSQL: migration 0010 writes the same per day x tool user bitmaps the rollup now keeps."""
    import importlib
    from types import SimpleNamespace

    from django.apps import apps
    from django.db import connection

    from catalog.reports.rollup import DAY_USERS_TABLE, USER_INDEX_TABLE

    if connection.vendor != "postgresql":
        pytest.skip("the bitmaps are PostgreSQL only")
    dave = people["dave"]
    for offset, user in ((0, people["alice"]), (1, dave), (8, people["alice"])):
        record_usage("agent_run_started", user=user, tool=claude, at=at(monday(2) + dt.timedelta(days=offset)))
    rollup_usage()

    def bitmaps() -> list:
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT d.day, d.tool_slug, ui.user_ref FROM {DAY_USERS_TABLE} d JOIN {USER_INDEX_TABLE} ui "
                "ON substring(d.users from ui.idx + 1 for 1) = B'1' ORDER BY 1, 2, 3"
            )
            return cur.fetchall()

    before = bitmaps()
    assert len(before) == 6  # three days x (claude-code, '*'), one person each
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE {DAY_USERS_TABLE}; DROP TABLE {USER_INDEX_TABLE}")
        migration = importlib.import_module("catalog.migrations.0010_usage_day_users")
        migration.create_day_users(apps, SimpleNamespace(connection=connection, execute=cur.execute))
    assert bitmaps() == before


def test_rollup_picks_up_an_event_committed_behind_the_watermark(people, claude):
    d = monday(1)
    rollup_usage()
    record_usage("agent_run_started", user=people["alice"], tool=claude, at=at(d), key="slow-tx")
    # pretend a higher id was already folded in before this transaction committed
    RollupState.objects.filter(name="usage").update(last_event_id=UsageEvent.objects.latest("id").pk + 10)
    rollup_usage()
    assert UsageDaily.objects.get(day=d, tool_slug="claude-code").agent_runs == 1


@pytest.mark.parametrize("reader", ["carol", "erin"])  # a manager's teams, and every team (other read path)
def test_distinct_active_users_over_a_period_are_not_summed_from_days(people, teams, claude, api, reader):
    bea = UserFactory(username="bea")
    bea.groups.add(teams["payments"].group)
    d = monday(1)
    for user, days in ((people["alice"], (0, 1, 2)), (bea, (1,))):
        for offset in days:
            record_usage("agent_run_started", user=user, tool=claude, at=at(d + dt.timedelta(days=offset)))
    rollup_usage()
    client = api(people[reader])
    rng = {"from": d, "to": d + dt.timedelta(days=6), "tool": "claude-code"}
    if reader == "carol":
        rng["team"] = "payments"
    daily = client.get(REPORT, {**rng, "granularity": "day"}).json()
    assert sum(r["active_users"] for r in daily["rows"]) == 4
    weekly = client.get(REPORT, rng).json()
    [row] = weekly["rows"]
    assert row["active_users"] == 2 and row["team_members"] == 2 and row["adoption_rate"] == 1.0
    assert weekly["totals"]["active_users"] == 2
    assert [s["active_users"] for s in weekly["tool_series"]] == [2]
    # a range that clips the week (from Tuesday) counts the same people differently: alice and bea on Tue
    clipped = client.get(REPORT, {**rng, "from": d + dt.timedelta(days=1)}).json()
    assert clipped["rows"][0]["active_users"] == 2 and clipped["totals"]["active_users"] == 2
    late = client.get(REPORT, {**rng, "from": d + dt.timedelta(days=2)}).json()
    assert late["rows"][0]["active_users"] == 1


def test_periods_older_than_the_stored_window_are_reported_live(people, teams, claude):
    """Only the last STORED_REPORT_DAYS are stored (a change of teams or grants rewrites every stored
    period); a report further back is computed live, with the same numbers."""
    from catalog.reports.params import ReportParams
    from catalog.reports.stored import STORED_REPORT_DAYS

    old = monday(STORED_REPORT_DAYS // 7 + 4)
    record_usage("agent_run_started", user=people["alice"], tool=claude, at=at(old))
    record_usage("agent_run_started", user=people["alice"], tool=claude, at=at(monday(1)))
    rollup_usage()
    stored = set(UsagePeriodTotal.objects.filter(team_slug="*", tool_slug="*").values_list("kind", "start"))
    assert ("week", monday(1)) in stored and ("week", old) not in stored
    assert min(start for _, start in stored) >= timezone.now().date() - dt.timedelta(days=STORED_REPORT_DAYS)
    params = ReportParams(date_from=old, date_to=old + dt.timedelta(days=6))
    served, used_stored, live = _report_both_ways(people["erin"], params)
    assert not used_stored and served == live and served["totals"]["agent_runs"] == 1


def test_active_users_over_a_range_stay_right_as_new_people_widen_the_bitmaps(people, teams, claude, monkeypatch):
    """On PostgreSQL distinct users over a range come from per day x tool bitmaps of fixed width; people who
    first show up later widen every bitmap, and earlier days still count the same people."""
    from django.db import connection

    from catalog.reports import rollup
    from catalog.reports.adoption import adoption_report
    from catalog.reports.params import ReportParams

    monkeypatch.setattr(rollup, "BITS_STEP", 8)
    d = monday(2)
    crowd = [UserFactory(username=f"dev{i:02}") for i in range(12)]
    for user in crowd:
        user.groups.add(teams["search"].group)
    for i, user in enumerate(crowd[:5]):  # five people on Monday, two of them again on Tuesday
        record_usage("agent_run_started", user=user, tool=claude, at=at(d))
        if i < 2:
            record_usage("tool_used", user=user, tool=claude, at=at(d + dt.timedelta(days=1)))
    rollup_usage()
    for user in crowd[3:]:  # nine people a week later, three of them seen before
        record_usage("tool_used", user=user, tool=claude, at=at(d + dt.timedelta(days=8)))
    rollup_usage()

    def totals(first: dt.date, last: dt.date) -> tuple[int, list[int]]:
        report = adoption_report(people["erin"], ReportParams(date_from=first, date_to=last))
        return report["totals"]["active_users"], [t["active_users"] for t in report["top_tools"]]

    assert totals(d, d + dt.timedelta(days=1)) == (5, [5])
    assert totals(d + dt.timedelta(days=1), d + dt.timedelta(days=8)) == (11, [11])  # 2 on Tuesday + 9 later
    assert totals(d, d + dt.timedelta(days=13)) == (12, [12])
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute(f"SELECT DISTINCT length(users) FROM {rollup.DAY_USERS_TABLE}")
            assert cur.fetchall() == [(16,)]  # 12 people: every bitmap widened from 8 to 16 bits


# --- the report ---------------------------------------------------------------------------------


@pytest.fixture
def activity(people, teams, claude):
    """A week of payments activity, a paid but unused grant for search, and a pending request."""
    d = monday(1)
    alice = people["alice"]
    access_services.grant_create(actor=people["bob"], team=teams["payments"], tool=claude, seats=2)
    unused = ToolFactory(slug="cursor", status="approved", monthly_price_per_seat=Decimal("40.00"))
    access_services.grant_create(actor=people["bob"], team=teams["search"], tool=unused, seats=5)
    AccessGrant.objects.filter(tool=unused).update(created_at=at(d - dt.timedelta(days=30)))
    AccessGrant.objects.filter(tool=claude).update(created_at=at(d - dt.timedelta(days=30)))
    access_services.access_request_create(actor=people["dave"], tool=claude, team=teams["search"], justification="x")
    record_usage("workspace_created", user=alice, at=at(d), template="python-service", key="w1")
    record_usage("build_succeeded", user=alice, at=at(d), duration_s=30, outcome="start", key="b1")
    record_usage("build_succeeded", user=alice, at=at(d), duration_s=50, outcome="start", key="b2")
    record_usage("build_failed", user=alice, at=at(d), duration_s=5, outcome="start", key="b3")
    for i in range(4):
        record_usage("agent_run_started", user=alice, tool=claude, at=at(d), key=f"s{i}")
        record_usage(
            "agent_run_finished",
            user=alice,
            tool=claude,
            at=at(d),
            outcome="succeeded",
            duration_s=60,
            cost=Decimal("0.25"),
            key=f"f{i}",
        )
    record_usage("agent_result_accepted", user=alice, tool=claude, at=at(d), key="a1")
    record_usage("policy_denied", user=alice, tool=unused, at=at(d), key="p1")
    rollup_usage()
    return d


def test_report_fields_totals_cost_unused_seats_and_pending_requests(people, api, activity):
    d = activity
    response = api(people["erin"]).get(REPORT, {"from": d, "to": d + dt.timedelta(days=6)})
    assert response.status_code == 200
    report = response.json()
    rows = {(r["team"], r["tool"]): r for r in report["rows"]}
    claude_row = rows[("payments", "claude-code")]
    assert set(METRICS) <= set(claude_row)
    assert claude_row["agent_runs"] == 4 and claude_row["agent_acceptance_rate"] == 0.25
    # 2 seats x $30 prorated over 7 days (a month = 365/12 days) + 4 runs x $0.25
    assert claude_row["seat_cost"] == pytest.approx(30 * 2 * 7 / (365 / 12), abs=0.01)
    assert claude_row["estimated_cost"] == pytest.approx(claude_row["seat_cost"] + 1.0, abs=0.01)
    ws = rows[("payments", "")]
    assert ws["workspaces_created"] == 1 and ws["build_success_rate"] == 0.667
    assert ws["median_time_to_ready_s"] == pytest.approx(40, abs=1)  # median of 30 s and 50 s
    assert rows[("payments", "cursor")]["policy_denials"] == 1
    assert report["totals"]["agent_runs"] == 4 and report["totals"]["active_users"] == 1
    assert report["top_tools"][0]["tool"] == "claude-code"
    assert [(u["team"], u["tool"], u["seats"]) for u in report["unused_paid_seats"]] == [("search", "cursor", 5)]
    [pending] = report["pending_access_requests"]
    assert (pending["team"], pending["tool"], pending["requester"]) == ("search", "claude-code", "dave")
    assert pending["age_days"] >= 0
    assert {s["stage"] for s in report["funnel"]} == {"requested", "granted", "first_use", "accepted_agent_result"}
    assert report["demo_data"] is False


def test_a_whole_week_read_from_its_stored_row_matches_the_week_computed_live(people, api, activity):
    """A whole week comes from the row the rollup stored; ending the range on Saturday clips the week, so the
    report computes it live from the days. Nothing happened on that Sunday: every number must agree."""
    d = activity
    client = api(people["erin"])
    whole = client.get(REPORT, {"from": d, "to": d + dt.timedelta(days=6)}).json()
    live = client.get(REPORT, {"from": d, "to": d + dt.timedelta(days=5)}).json()
    assert UsagePeriod.objects.filter(kind="week", start=d, row_json__isnull=False).exists()
    assert len(whole["rows"]) == len(live["rows"]) >= 3
    for stored, computed in zip(whole["rows"], live["rows"], strict=True):
        assert stored.pop("period_end") == (d + dt.timedelta(days=6)).isoformat()
        assert computed.pop("period_end") == (d + dt.timedelta(days=5)).isoformat()
        # seat costs are prorated per day, so one day fewer costs less; everything else is the same
        for cost in ("seat_cost", "estimated_cost"):
            stored.pop(cost), computed.pop(cost)
        assert stored == computed
    # 30 s and 50 s, read at 1 s bucket midpoints
    assert whole["totals"]["median_time_to_ready_s"] == live["totals"]["median_time_to_ready_s"] == 40.5


def _report_both_ways(user, params):
    """The report as served (stored period reports when they hold), whether it read them, and the report
    computed live; both as the JSON the API sends, without the generation time."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from catalog.reports.adoption import adoption_report, report_json

    def text(report) -> dict:
        out = json.loads(report_json(report))
        out.pop("generated_at")
        return out

    with CaptureQueriesContext(connection) as queries:
        served = adoption_report(user, params)
    used_stored = any("inputs_key" in q["sql"] for q in queries) and not any("row_json" in q["sql"] for q in queries)
    return text(served), used_stored, text(adoption_report(user, params, stored=False))


def test_report_over_every_team_reads_stored_periods_while_teams_and_grants_hold(people, teams, api, activity):
    """An auditor's report over whole weeks or months comes from the stored period reports, and says exactly
    what the live report says. Changing a team's size, a grant or a price makes it live again at once (the
    new numbers show), and the next rollup stores the periods anew."""
    from catalog.reports.params import ReportParams
    from catalog.services import teams as team_services

    d, erin = activity, people["erin"]
    today = timezone.now().date()
    weeks = ReportParams(date_from=d - dt.timedelta(weeks=1), date_to=d + dt.timedelta(days=6), granularity="week")
    months = ReportParams(date_from=d.replace(day=1), date_to=today, granularity="month")
    for params in (weeks, months):
        served, used_stored, live = _report_both_ways(erin, params)
        assert used_stored and served == live
        assert any(r["agent_runs"] == 4 for r in served["rows"]) and served["unused_paid_seats"]

    def payments_row(report: dict) -> dict:
        return next(r for r in report["rows"] if (r["team"], r["tool"]) == ("payments", "claude-code"))

    before = payments_row(_report_both_ways(erin, weeks)[0])
    changes = [
        lambda: team_services.team_member_add(team=teams["payments"], actor=people["admin"], user=people["dave"]),
        lambda: AccessGrant.objects.filter(team=teams["payments"]).update(seats=4),
        lambda: tool_services.tool_update(
            tool=AccessGrant.objects.get(team=teams["payments"]).tool,
            actor=people["bob"],
            data={"monthly_price_per_seat": Decimal("45.00")},
        ),
    ]
    for change in changes:
        change()
        served, used_stored, live = _report_both_ways(erin, weeks)
        assert not used_stored and served == live
        assert rollup_usage()["reports_refreshed"] >= 2  # the two weeks (and the months) written anew
        served, used_stored, live = _report_both_ways(erin, weeks)
        assert used_stored and served == live
    after = payments_row(served)
    assert (before["team_members"], after["team_members"]) == (1, 2)
    # 4 seats at $45 instead of 2 at $30, over the same 7 days
    assert after["seat_cost"] == pytest.approx(before["seat_cost"] * 3, abs=0.02)
    # a manager's report (her teams only) and a one-tool report are always computed live
    for user, params in (
        (people["carol"], weeks),
        (erin, ReportParams(date_from=weeks.date_from, date_to=weeks.date_to, tool="claude-code")),
    ):
        served, used_stored, live = _report_both_ways(user, params)
        assert not used_stored and served == live


def test_report_rounds_half_away_from_zero(people, teams, claude, api):
    """1 accepted result in 8 finished runs is 0.125: shown as 0.125 (3 places), and 1/16 = 0.0625 as 0.063."""
    d = monday(1)
    alice = people["alice"]
    for i in range(16):
        record_usage("agent_run_finished", user=alice, tool=claude, at=at(d), outcome="succeeded", key=f"f{i}")
    record_usage("agent_result_accepted", user=alice, tool=claude, at=at(d), key="a1")
    rollup_usage()
    client = api(people["erin"])
    for to in (d + dt.timedelta(days=6), d + dt.timedelta(days=5)):  # stored row, then computed live
        [row] = client.get(REPORT, {"from": d, "to": to, "tool": "claude-code"}).json()["rows"]
        assert row["agent_acceptance_rate"] == 0.063


def test_report_csv_has_the_same_rows_as_json(people, api, activity):
    d = activity
    client = api(people["bob"])
    query = {"from": d, "to": d + dt.timedelta(days=13), "granularity": "day"}
    rows = client.get(REPORT, query).json()["rows"]
    response = client.get(REPORT, {**query, "format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert list(parsed[0].keys()) == ROW_FIELDS
    assert parsed == [{k: "" if r[k] is None else str(r[k]) for k in ROW_FIELDS} for r in rows]


@pytest.mark.parametrize(
    ("who", "query", "status"),
    [
        ("alice", {}, 403),
        ("dave", {"team": "search"}, 403),
        ("carol", {}, 200),
        ("carol", {"team": "payments"}, 200),
        ("carol", {"team": "platform"}, 403),
        ("erin", {"team": "platform"}, 200),
        ("bob", {}, 200),
        ("admin", {}, 200),
        ("erin", {"granularity": "year"}, 400),
        ("erin", {"from": "2026-02-30"}, 400),
        ("erin", {"from": "2026-03-01", "to": "2026-02-01"}, 400),
        ("carol", {"to": "yesterday"}, 400),
    ],
)
def test_report_roles_and_bad_parameters(people, api, activity, who, query, status):
    response = api(people[who]).get(REPORT, query)
    assert response.status_code == status, response.content
    if status == 200 and who == "carol":
        assert {r["team"] for r in response.json()["rows"]} <= {"payments", "search"}
        assert response.json()["teams"] == (["payments"] if query else ["payments", "search"])


def test_report_needs_a_sign_in_and_usage_events_list_is_restricted(people, api, activity):
    assert api().get(REPORT).status_code == 401
    for who, status in (("alice", 403), ("carol", 403), ("erin", 200), ("bob", 200), ("admin", 200)):
        assert api(people[who]).get("/api/v1/usage-events/").status_code == status, who
    listed = api(people["erin"]).get("/api/v1/usage-events/", {"kind": "agent_run_started", "page_size": 2}).json()
    assert len(listed["results"]) == 2 and listed["next"]
    assert api(people["erin"]).post("/api/v1/usage-events/", {}).status_code == 405


def test_dashboard_page_and_command(people, client, activity, capsys):
    client.force_login(people["carol"])
    page = client.get("/reports/adoption/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "goldpath/vendor/chartjs/chart.umd.js" in html and "chart-funnel" in html and "format=csv" in html
    assert (
        "@media print"
        in (
            __import__("pathlib").Path(__file__).resolve().parent.parent / "catalog/static/goldpath/reports.css"
        ).read_text()
    )
    assert client.get("/reports/adoption/?team=platform").status_code == 403
    client.force_login(people["alice"])
    assert client.get("/reports/adoption/").status_code == 403
    assert client.get("/static/goldpath/vendor/chartjs/chart.umd.js").status_code == 200
    d = activity
    call_command("adoption_report", "--from", str(d), "--to", str(d + dt.timedelta(days=6)), "--format", "csv")
    out = capsys.readouterr().out
    assert out.splitlines()[0] == ",".join(ROW_FIELDS) and "claude-code" in out
    call_command("adoption_report", "--from", str(d), "--to", str(d + dt.timedelta(days=6)), "--format", "json")
    assert json.loads(capsys.readouterr().out)["totals"]["agent_runs"] == 4


def test_seed_demo_adds_history_once_and_the_page_marks_it(settings, client):
    settings.DEBUG = True
    call_command("seed_demo", verbosity=0)
    demo = UsageEvent.objects.filter(source="demo-seed")
    count = demo.count()
    days = demo.values("day").distinct().count()
    first_day = demo.order_by("day").values_list("day", flat=True).first()
    assert count > 500 and days >= 60 and (timezone.now().date() - first_day).days >= 85
    call_command("seed_demo", verbosity=0)
    assert demo.count() == count
    from django.contrib.auth import get_user_model

    carol = get_user_model().objects.get(username="carol")
    client.force_login(carol)
    html = client.get("/reports/adoption/").content.decode()
    assert "Includes demo data" in html
    # real activity lands on top of the demo history after the next rollup
    alice = get_user_model().objects.get(username="alice")
    from catalog.models import AITool

    before = UsageDaily.objects.filter(day=timezone.now().date(), team_slug="payments").count()
    record_usage("agent_run_started", user=alice, tool=AITool.objects.get(slug="claude-code"))
    rollup_usage()
    after = UsageDaily.objects.filter(day=timezone.now().date(), team_slug="payments", tool_slug="claude-code")
    assert after.get().agent_runs >= 1 and UsageDaily.objects.filter(day=timezone.now().date()).count() >= before


@pytest.mark.django_db(transaction=True)
@pytest.mark.integration
def test_rollup_task_runs_on_the_reports_queue_of_a_real_worker(people, claude, celery_worker, settings):
    from catalog.tasks.reports import rollup_usage as rollup_task
    from tests.conftest import wait_for

    schedule = settings.CELERY_BEAT_SCHEDULE["usage-rollup"]
    assert schedule["task"] == "catalog.tasks.reports.rollup_usage"
    assert 30 <= schedule["schedule"].total_seconds() <= 60
    record_usage("agent_run_started", user=people["alice"], tool=claude, key="worker-1")
    rollup_task.delay()
    row = wait_for(lambda: UsageDaily.objects.filter(tool_slug="claude-code").first(), timeout=30, message="the rollup")
    assert row.agent_runs == 1 and row.team_slug == "payments"


def test_report_defaults_to_the_last_twelve_whole_weeks(people, api):
    report = api(people["erin"]).get(REPORT).json()
    today = timezone.now().date()
    start = dt.date.fromisoformat(report["from"])
    assert report["to"] == today.isoformat() and report["granularity"] == "week"
    assert start.weekday() == 0 and (today - start).days // 7 == 11 and len(report["periods"]) == 12


def test_workspace_services_record_usage_and_the_report_counts_it(people, teams, api):
    from catalog.services import builds as build_services
    from catalog.services import workspaces as ws_services
    from tests.workspace_helpers import granted_tools, published_template, sample_repository

    tools = granted_tools(people, teams)
    template = published_template(tools=[tools["claude-code"]])
    alice = people["alice"]
    sample_repository(people)
    ws = ws_services.workspace_create(
        actor=alice, name="pay-1", template=template, parameters={"repository": "sample"}, tools=["claude-code"]
    )
    first = ws.latest_build
    build_services.build_claim(first.pk)
    build_services.build_finish(first.pk, status="succeeded")
    stop = ws_services.workspace_stop(workspace=ws, actor=alice)
    build_services.build_claim(stop.pk)
    build_services.build_finish(stop.pk, status="failed", error="boom")
    kinds = sorted(UsageEvent.objects.values_list("kind", "team_slug", "template_slug", "outcome"))
    assert ("workspace_created", "payments", template.slug, "") in kinds
    assert ("tool_enabled", "payments", template.slug, "") in kinds
    assert ("build_succeeded", "payments", template.slug, "start") in kinds
    assert ("workspace_stopped", "payments", template.slug, "") in kinds
    assert ("build_failed", "payments", template.slug, "stop") in kinds
    rollup_usage()
    today = timezone.now().date()
    report = api(people["carol"]).get(REPORT, {"team": "payments", "from": today, "to": today, "granularity": "day"})
    rows = {r["tool"]: r for r in report.json()["rows"]}
    assert rows[""]["workspaces_created"] == 1 and rows[""]["build_success_rate"] == 0.5
    assert rows[""]["median_time_to_ready_s"] is not None and rows[""]["active_users"] == 1
    assert rows["claude-code"]["active_users"] == 1  # enabling the tool in a workspace is a use
