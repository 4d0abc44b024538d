"""Cut periods stored on first use (issue 17): a range that cuts a week or month is computed live once, a worker
stores the cut, and the same range is then served from it with exactly the live numbers, until a late event,
a change of teams or grants, or age makes the rollup drop it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import UsageDaily, UsagePeriodCut
from catalog.reports import cuts
from catalog.reports.adoption import adoption_report
from catalog.reports.params import ReportParams
from catalog.reports.periods import periods, whole_periods
from catalog.reports.rollup import rollup_usage
from catalog.tasks.reports import store_cut_report
from catalog.usage import record_usage
from tests.conftest import wait_for
from tests.factories import UserFactory
from tests.test_reports_stored import _cut_ranges, at, make_history, served_and_live

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(people, teams):
    """Six weeks of usage across two teams and three tools (as in test_reports_stored)."""
    return make_history(people, teams)


CUT_TABLE = UsagePeriodCut._meta.db_table
DAY_TABLE = UsageDaily._meta.db_table


def cut_periods(params: ReportParams) -> list[tuple]:
    today = dt.date.today()
    plist = periods(params)
    whole, _ = whole_periods(params, plist, today)
    return [p for p in plist if p[0] not in whole]


def store_cuts(params: ReportParams) -> None:
    """What the worker does for each cut the report asked for."""
    for _key, first, last in cut_periods(params):
        assert cuts.store_cut_report(params.granularity, first, last)


def served_from(user, params: ReportParams) -> set[str]:
    """Which of the stored cuts and the day rollup the served report read."""
    with CaptureQueriesContext(connection) as queries:
        adoption_report(user, params)
    sql = " ".join(q["sql"] for q in queries.captured_queries if q["sql"].startswith("WITH"))
    return {name for name, table in (("cuts", CUT_TABLE), ("days", DAY_TABLE)) if table in sql}


def test_a_cut_range_is_served_from_its_stored_cut_with_the_live_numbers(people, history):
    """Every kind of cut (the first week of 4 weeks from a Thursday, both ends, the middle of last month by
    month and by week): stored once, then served without reading a single day, and the report is exactly
    the live one."""
    start, today = history
    erin = people["erin"]
    for params in _cut_ranges(start, today):
        assert "days" in served_from(erin, params)  # first time: the cut's days are computed
        store_cuts(params)
        assert served_from(erin, params) == {"cuts"}, params
        served, used_stored, live = served_and_live(erin, params)
        assert used_stored and served == live, params
        assert served["rows"] and served["totals"]["agent_runs"] > 0
        assert served["unused_paid_seats"] and served["pending_access_requests"]
        assert served["tool_series"] and served["team_series"]
    # storing again while it holds writes nothing
    first = cut_periods(_cut_ranges(start, today)[0])[0]
    assert not cuts.store_cut_report("week", first[1], first[2])


def test_a_late_event_in_a_stored_cut_drops_it_and_the_report_counts_the_event(people, teams, history):
    start, today = history
    params = _cut_ranges(start, today)[0]
    store_cuts(params)
    before, _, _ = served_and_live(people["erin"], params)
    _key, first, last = cut_periods(params)[0]
    late = UserFactory(username="late")
    late.groups.add(teams["payments"].group)
    record_usage("agent_run_started", user=late, tool="claude-code", at=at(first + dt.timedelta(days=1)), key="late")
    rollup_usage()
    assert not UsagePeriodCut.objects.filter(first_day=first, last_day=last).exists()
    served, used_stored, live = served_and_live(people["erin"], params)
    assert served == live
    assert served["totals"]["agent_runs"] == before["totals"]["agent_runs"] + 1
    store_cuts(params)  # the worker stores it anew, with the event
    assert served_from(people["erin"], params) == {"cuts"}
    assert served_and_live(people["erin"], params)[0] == live


def test_a_stored_cut_is_not_served_once_teams_change_and_the_rollup_drops_it(people, teams, history):
    start, today = history
    params = _cut_ranges(start, today)[0]
    store_cuts(params)
    teams["payments"].group.user_set.add(UserFactory(username="newcomer"))
    served, _, live = served_and_live(people["erin"], params)
    assert served == live  # the new team size shows at once
    assert "days" in served_from(people["erin"], params)
    rollup_usage()
    assert not UsagePeriodCut.objects.exists()


def test_the_rollup_drops_cuts_written_more_than_a_week_ago(people, history):
    start, today = history
    params = _cut_ranges(start, today)[0]
    store_cuts(params)
    UsagePeriodCut.objects.update(written_at=dt.datetime.now(dt.UTC) - cuts.CUT_KEEP - dt.timedelta(minutes=1))
    rollup_usage()
    assert not UsagePeriodCut.objects.exists()


def test_only_cuts_can_be_stored(people, history):
    start, today = history
    monday = start + dt.timedelta(weeks=1)
    with pytest.raises(ValueError, match="whole week"):
        cuts.store_cut_report("week", monday, monday + dt.timedelta(days=6))
    with pytest.raises(ValueError, match="not within one week"):
        cuts.store_cut_report("week", monday + dt.timedelta(days=3), monday + dt.timedelta(days=9))
    with pytest.raises(ValueError, match="week or a month"):
        cuts.store_cut_report("day", monday, monday)
    with pytest.raises(ValueError, match="before the week"):
        store_cut_report.run(
            "week", (monday + dt.timedelta(days=4)).isoformat(), monday.isoformat(), monday.isoformat()
        )
    assert not UsagePeriodCut.objects.exists()


@pytest.mark.integration
def test_the_first_request_for_a_cut_range_has_a_worker_store_it_for_the_next(people, history, api, celery_worker):
    """Through the API with a real worker: the first request is computed live and asks the worker; the worker
    stores the cut; the next request reads it and says the same."""
    start, today = history
    params = _cut_ranges(start, today)[0]
    client = api(people["erin"])
    query = {"from": params.date_from.isoformat(), "to": params.date_to.isoformat()}
    first = client.get("/api/v1/reports/adoption/", query)
    assert first.status_code == 200
    wait_for(lambda: UsagePeriodCut.objects.filter(team_slug="*", tool_slug="*").exists(), 30, message="the cut")
    with CaptureQueriesContext(connection) as queries:
        second = client.get("/api/v1/reports/adoption/", query)
    statement = next(q["sql"] for q in queries.captured_queries if q["sql"].startswith("WITH"))
    assert CUT_TABLE in statement and DAY_TABLE not in statement
    strip = lambda body: {k: v for k, v in body.items() if k != "generated_at"}  # noqa: E731
    assert strip(second.json()) == strip(first.json())


def test_asking_for_many_ranges_keeps_only_the_latest_cuts(people, history, monkeypatch):
    """Every distinct range stores a cut of a few MB: a reader scripting ranges must not fill the database."""
    monkeypatch.setattr(cuts, "CUT_MAX", 3)
    start, _today = history
    thursday = start + dt.timedelta(weeks=1, days=3)
    for offset in range(6):  # six different cuts of one week: Thursday..Sunday, Thursday..Saturday, ...
        first = thursday + dt.timedelta(days=offset % 3)
        last = thursday + dt.timedelta(days=3 - offset // 3)
        cuts.store_cut_report("week", first, last)
    kept = set(UsagePeriodCut.objects.filter(team_slug="*", tool_slug="*").values_list("first_day", "last_day"))
    saturday = thursday + dt.timedelta(days=2)
    assert kept == {(thursday + dt.timedelta(days=d), saturday) for d in range(3)}  # the three written last
    # and nothing of the others is left behind (their team x tool rows went with them)
    assert set(UsagePeriodCut.objects.values_list("first_day", "last_day").distinct()) == kept
