"""Stored period reports (issue 17): a range that cuts a week or month reads its whole periods from the stored
reports and only the cut days live, saying exactly what the live report says; and a change of the report's
columns makes every stored period stale until the rollup writes it anew."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from catalog.models import AccessGrant, UsagePeriodTotal
from catalog.reports import stored
from catalog.reports.params import ReportParams
from catalog.reports.rollup import rollup_usage
from catalog.reports.rowsql import ROW_FIELDS
from catalog.services import access as access_services
from catalog.usage import record_usage
from tests.factories import ToolFactory, UserFactory
from tests.test_reports import _report_both_ways

pytestmark = pytest.mark.django_db


def at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def served_and_live(user, params: ReportParams) -> tuple[dict, bool, dict]:
    """(the report as served, whether it read the stored periods, the report computed live)."""
    return _report_both_ways(user, params)


@pytest.fixture
def history(people, teams):
    """Six weeks of usage (see make_history); (its first Monday, today)."""
    return make_history(people, teams)


def make_history(people, teams):
    """Six weeks of usage across two teams and three tools: agent runs with costs, builds with times to ready,
    vendor-reported users, people active across week boundaries, paid grants (one unused) and a pending
    request."""
    today = timezone.now().date()
    start = today - dt.timedelta(days=today.weekday()) - dt.timedelta(weeks=5)
    claude = ToolFactory(slug="claude-code", status="approved", monthly_price_per_seat=Decimal("30.00"))
    aider = ToolFactory(slug="aider", status="approved", monthly_price_per_seat=Decimal("0"))
    cursor = ToolFactory(slug="cursor", status="approved", monthly_price_per_seat=Decimal("40.00"))
    access_services.grant_create(actor=people["bob"], team=teams["payments"], tool=claude, seats=3)
    access_services.grant_create(actor=people["bob"], team=teams["search"], tool=cursor, seats=5)
    AccessGrant.objects.update(created_at=at(start - dt.timedelta(days=10)))
    access_services.access_request_create(actor=people["dave"], tool=claude, team=teams["search"], justification="x")
    crowd = [UserFactory(username=f"dev{i}") for i in range(6)]
    for i, user in enumerate(crowd):
        user.groups.add((teams["payments"] if i % 2 else teams["search"]).group)
    n = 0
    day = start
    while day <= today:
        for i, user in enumerate(crowd):
            if (day.toordinal() + i) % 3:
                continue
            n += 1
            tool = (claude, aider)[(i + day.day) % 2]
            record_usage("agent_run_started", user=user, tool=tool, at=at(day), key=f"s{n}")
            record_usage(
                "agent_run_finished",
                user=user,
                tool=tool,
                at=at(day, 11),
                outcome="succeeded" if n % 4 else "failed",
                duration_s=30 + n,
                cost=Decimal("0.13") * (n % 3),
                key=f"f{n}",
            )
            if n % 5 == 0:
                record_usage("agent_result_accepted", user=user, tool=tool, at=at(day, 12), key=f"a{n}")
            if n % 3 == 0:
                record_usage("workspace_created", user=user, at=at(day), template="python-service", key=f"w{n}")
                record_usage(
                    "build_succeeded", user=user, at=at(day), duration_s=20 + n % 50, outcome="start", key=f"b{n}"
                )
            if n % 7 == 0:
                record_usage("build_failed", user=user, at=at(day), duration_s=4, outcome="start", key=f"x{n}")
                record_usage("policy_denied", user=user, tool=cursor, at=at(day), key=f"p{n}")
        if day.weekday() < 5:  # a vendor's daily count with no user ids (like GitHub Copilot's metrics)
            record_usage(
                "tool_used",
                team=teams["search"],
                tool="github-copilot",
                at=at(day, 9),
                source="import:copilot",
                reported_users=2 + day.day % 4,
                key=f"v{day}",
            )
        day += dt.timedelta(days=1)
    rollup_usage()
    return start, today


def _cut_ranges(start: dt.date, today: dt.date) -> list[ReportParams]:
    thursday = start + dt.timedelta(weeks=1, days=3)
    first_of_month = today.replace(day=1)
    previous_month = (first_of_month - dt.timedelta(days=1)).replace(day=1)
    return [
        # 4 weeks from a Thursday, to today: the first week is cut, the others are whole
        ReportParams(date_from=thursday + dt.timedelta(weeks=1), date_to=today),
        # cut at both ends: from a Thursday to a Saturday two weeks later
        ReportParams(date_from=thursday, date_to=thursday + dt.timedelta(weeks=2, days=2)),
        # by month, from the middle of last month
        ReportParams(date_from=previous_month + dt.timedelta(days=9), date_to=today, granularity="month"),
        # by week, from the middle of last month to the last day of last week: the last period is whole
        ReportParams(
            date_from=previous_month + dt.timedelta(days=9),
            date_to=today - dt.timedelta(days=today.weekday() + 1),
        ),
    ]


def test_a_cut_range_serves_whole_periods_stored_and_cut_days_live_with_the_live_numbers(people, history):
    start, today = history
    erin = people["erin"]
    for params in _cut_ranges(start, today):
        served, used_stored, live = served_and_live(erin, params)
        assert used_stored, params
        assert served == live, params
        assert served["rows"] and served["totals"]["agent_runs"] > 0
        assert served["unused_paid_seats"] and served["pending_access_requests"]
    # the rows really cover the cut period: its first day is the range's first day, not its week's Monday
    params = _cut_ranges(start, today)[0]
    served, _, _ = served_and_live(erin, params)
    assert served["periods"][0]["period_start"] == params.date_from.isoformat()
    assert min(r["period_start"] for r in served["rows"]) == params.date_from.isoformat()


def test_a_cut_range_is_computed_live_once_teams_change_and_stored_again_after_the_rollup(people, teams, history):
    start, today = history
    params = _cut_ranges(start, today)[0]
    teams["payments"].group.user_set.add(UserFactory(username="newcomer"))
    served, used_stored, live = served_and_live(people["erin"], params)
    assert not used_stored and served == live
    assert rollup_usage()["reports_refreshed"] > 0
    served, used_stored, live = served_and_live(people["erin"], params)
    assert used_stored and served == live


def _fingerprints() -> dict[tuple, str]:
    """Each stored period's fingerprint, and (key None) the one that holds now."""
    with connection.cursor() as cur:
        cur.execute(f"SELECT {stored.inputs_key_sql(stored.Dialect())}")
        now = cur.fetchone()[0]
    rows = UsagePeriodTotal.objects.filter(team_slug="*", tool_slug="*").values_list("kind", "start", "inputs_key")
    return {**{(kind, start): key for kind, start, key in rows}, None: now}


@pytest.mark.parametrize("change", ["version", "columns"])
def test_a_change_of_the_report_columns_refreshes_every_stored_period(people, history, monkeypatch, change):
    """Stored reports written before a column was added must not be served without it: the fingerprint
    covers the report's shape, so they are read live until the next rollup rewrites every one of them."""
    start, today = history
    params = ReportParams(date_from=start, date_to=today)  # whole weeks: all from the stored reports
    assert served_and_live(people["erin"], params)[1]
    assert rollup_usage()["reports_refreshed"] == 0  # nothing changed
    before = _fingerprints()
    assert len(set(before.values())) == 1
    if change == "version":
        monkeypatch.setattr(stored, "STORED_SCHEMA_VERSION", stored.STORED_SCHEMA_VERSION + 1)
    else:
        monkeypatch.setattr(stored, "ROW_FIELDS", [*ROW_FIELDS, "new_column"])
    served, used_stored, live = served_and_live(people["erin"], params)
    assert not used_stored and served == live  # stale: computed live
    assert _fingerprints()[None] != before[None]
    assert rollup_usage()["reports_refreshed"] > 0
    after = _fingerprints()  # every stored period written anew, with the new fingerprint
    assert after.keys() == before.keys() and set(after.values()) == {after[None]}
    served, used_stored, live = served_and_live(people["erin"], params)
    assert used_stored and served == live
    assert rollup_usage()["reports_refreshed"] == 0
