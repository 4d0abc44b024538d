"""Attacks on stored cut periods (issue 17): try to make a served adoption report differ from the live one.

Each test stores cuts the way the worker does (`cuts.store_cut_report`, or the task itself), then changes
what a cut depends on (late events, grants, prices, teams, the date, concurrency with the rollup) and checks
that the report an auditor is served is exactly the report computed live. A failure here means an auditor
would be shown stale or wrong numbers, or the worker would misbehave.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.models import AccessGrant, AITool, RollupState, Team, UsageDaily, UsagePeriodCut
from catalog.reports import cuts
from catalog.reports.adoption import adoption_report, report_json
from catalog.reports.params import ReportParams
from catalog.reports.periods import period_of, periods, whole_periods
from catalog.reports.rollup import LOOKBACK, _rebuild_days, rollup_usage
from catalog.services import grants as grant_services
from catalog.services import teams as team_services
from catalog.services.errors import NotPermitted
from catalog.tasks.reports import store_cut_report as store_cut_task
from catalog.usage import record_usage
from tests.factories import ToolFactory, UserFactory
from tests.test_reports_stored import _cut_ranges, at, make_history

pytestmark = pytest.mark.django_db

CUT_TABLE = UsagePeriodCut._meta.db_table
DAY_TABLE = UsageDaily._meta.db_table
PG = connection.vendor == "postgresql"


@pytest.fixture
def history(people, teams):
    """Six weeks of usage across two teams and three tools (tests/test_reports_stored.make_history)."""
    return make_history(people, teams)


def roll(**kwargs) -> dict:
    """The rollup as it runs minutes after the previous one: it rebuilds the days of the events recorded since
    (ids above its watermark), not every day its lookback would re-read seconds after the history was made."""
    RollupState.objects.filter(name="usage").update(last_run_at=timezone.now() + LOOKBACK)
    return rollup_usage(**kwargs)


def _text(report) -> dict:
    out = json.loads(report_json(report))
    out.pop("generated_at")
    return out


def both_ways(user, params: ReportParams, now: dt.datetime | None = None) -> tuple[dict, set[str], dict]:
    """(the report as served, which of the stored cuts / the day rollup its statements read, the live one)."""
    with CaptureQueriesContext(connection) as queries:
        served = adoption_report(user, params, now=now)
    sql = " ".join(q["sql"] for q in queries.captured_queries if q["sql"].startswith("WITH"))
    read = {name for name, table in (("cuts", CUT_TABLE), ("days", DAY_TABLE)) if table in sql}
    live = adoption_report(user, params, now=now, stored=False)
    # the API writes the rows' text as the database wrote it: byte for byte the same, not only equal as JSON
    assert served["rows"].json == live["rows"].json, params
    return _text(served), read, _text(live)


def cut_periods(params: ReportParams, today: dt.date | None = None) -> list[tuple]:
    today = today or timezone.now().date()
    plist = periods(params)
    whole, _ = whole_periods(params, plist, today)
    return [p for p in plist if p[0] not in whole]


def store_cuts(params: ReportParams, now: dt.datetime | None = None) -> int:
    """What the worker does for each cut the report asks for; returns how many it wrote."""
    return sum(
        cuts.store_cut_report(params.granularity, first, last, now=now) for _k, first, last in cut_periods(params)
    )


def overall_cuts() -> set[tuple]:
    return set(
        UsagePeriodCut.objects.filter(team_slug="*", tool_slug="*").values_list(
            "kind", "start", "first_day", "last_day"
        )
    )


def assert_served_is_live(user, ranges, *, now=None, read=None) -> list[dict]:
    out = []
    for params in ranges:
        served, got, live = both_ways(user, params, now)
        assert served == live, params
        if read is not None:
            assert got == read, (params, got)
        out.append(served)
    return out


# --- late, backdated and not-yet-rolled-up events ---------------------------------------------------------


def test_backdated_events_in_a_stored_cut_are_served_only_after_the_rollup_and_then_exactly(people, teams, history):
    """Attack: store every kind of cut, then record backdated events on a cut's first and last days (an agent
    run by a brand-new person, a vendor count with a new peak, a fast build for the median) and one on a day no
    cut holds. Before the rollup both reports read the same rollups (the cut is still served, without the
    events); after it, the touched cuts are gone, the untouched one stays, and served == live with the events.
    An auditor would otherwise see last week's numbers without the late import."""
    start, today = history
    erin = people["erin"]
    ranges = _cut_ranges(start, today)
    for params in ranges:
        store_cuts(params)
    stored_before = overall_cuts()
    before = assert_served_is_live(erin, ranges, read={"cuts"})
    _k, first, last = cut_periods(ranges[0])[0]
    late = UserFactory(username="late-person")  # no team: the team sizes (the fingerprint) stay as they are
    record_usage(
        "agent_run_started", user=late, team=teams["payments"], tool="claude-code", at=at(first), key="late-run"
    )
    record_usage(
        "tool_used",
        team=teams["search"],
        tool="github-copilot",
        at=at(last, 9),
        source="import:copilot",
        reported_users=40,
        key="late-peak",
    )
    record_usage(
        "build_succeeded", user=late, team=teams["search"], at=at(last), duration_s=1, outcome="start", key="late-build"
    )
    # a day in a whole week between the cuts of ranges[1]: no stored cut holds it
    untouched_day = cut_periods(ranges[1])[0][2] + dt.timedelta(days=3)
    record_usage(
        "agent_run_started", user=late, team=teams["search"], tool="aider", at=at(untouched_day), key="late-elsewhere"
    )
    # no rollup yet: still served from the cuts, and the live report does not count them either
    assert assert_served_is_live(erin, ranges, read={"cuts"}) == before
    roll()
    kept = overall_cuts()
    assert ("week", period_of(first, "week"), first, last) not in kept
    assert kept == {c for c in stored_before if not any(c[2] <= d <= c[3] for d in (first, last, untouched_day))}
    after = assert_served_is_live(erin, ranges)
    assert after[0]["totals"]["agent_runs"] == before[0]["totals"]["agent_runs"] + 1
    # the worker stores them anew and they are served with the events
    for params in ranges:
        store_cuts(params)
    assert assert_served_is_live(erin, ranges, read={"cuts"}) == after


def test_a_full_rollup_drops_every_cut_and_the_report_stays_live_equal(people, history):
    """Attack: a full rebuild (`rollup_usage(full=True)`) after cuts were stored: no cut may survive it (its
    rows would no longer be from the rebuilt days), and the report equals the live one."""
    start, today = history
    ranges = _cut_ranges(start, today)
    for params in ranges:
        store_cuts(params)
    roll(full=True)
    assert not UsagePeriodCut.objects.exists()
    assert_served_is_live(people["erin"], ranges)


# --- what a cut takes from outside its days -----------------------------------------------------------------


def _claude_grant(teams) -> AccessGrant:
    return AccessGrant.objects.get(team=teams["payments"], tool__slug="claude-code", state="active")


def _new_paid_tool_grant(people, teams):
    tool = ToolFactory(slug="windsurf", status="approved", monthly_price_per_seat=Decimal("12.50"))
    grant_services.grant_create(actor=people["bob"], team=teams["payments"], tool=tool, seats=2)
    AccessGrant.objects.filter(tool=tool).update(created_at=at(timezone.now().date() - dt.timedelta(days=60)))


def _aider_becomes_paid(people, teams):
    """A seated grant on a free tool (not in the fingerprint while the price is 0) whose price then rises."""
    aider = AITool.objects.get(slug="aider")
    grant_services.grant_create(actor=people["bob"], team=teams["search"], tool=aider, seats=4)
    AccessGrant.objects.filter(tool=aider).update(created_at=at(timezone.now().date() - dt.timedelta(days=60)))
    return aider


def _swap_members(people, teams):
    """Same team sizes, different people: the fingerprint is unchanged, and so must be every number."""
    payments, search = teams["payments"], teams["search"]
    a = payments.group.user_set.exclude(username="alice").order_by("username").first()
    b = search.group.user_set.exclude(username="dave").order_by("username").first()
    payments.group.user_set.remove(a)
    search.group.user_set.remove(b)
    payments.group.user_set.add(b)
    search.group.user_set.add(a)


CHANGES = {
    "seats": lambda people, teams: AccessGrant.objects.filter(pk=_claude_grant(teams).pk).update(seats=7),
    "price": lambda people, teams: AITool.objects.filter(slug="cursor").update(monthly_price_per_seat=Decimal("41")),
    "revoke": lambda people, teams: grant_services.grant_revoke(
        grant=_claude_grant(teams), actor=people["bob"], reason="attack"
    ),
    "backdated-end": lambda people, teams: AccessGrant.objects.filter(pk=_claude_grant(teams).pk).update(
        expires_at=at(timezone.now().date() - dt.timedelta(days=20))
    ),
    "created-later": lambda people, teams: AccessGrant.objects.filter(pk=_claude_grant(teams).pk).update(
        created_at=at(timezone.now().date() - dt.timedelta(days=16))
    ),
    "new-paid-grant": _new_paid_tool_grant,
    "free-tool-priced": None,  # the seated grant on the free tool exists before the cuts are stored (below)
    "member-added": lambda people, teams: team_services.team_member_add(
        team=teams["payments"], actor=people["admin"], user=UserFactory(username="newcomer")
    ),
    "member-moved": lambda people, teams: (
        teams["search"].group.user_set.remove(people["dave"]),
        teams["payments"].group.user_set.add(people["dave"]),
    ),
    "members-swapped": _swap_members,
    "slug-renamed": lambda people, teams: Team.objects.filter(slug="search").update(slug="search-2"),
    "team-deleted": lambda people, teams: team_services.team_delete(team=teams["search"], actor=people["admin"]),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_after_a_cut_was_stored_shows_at_once_and_after_the_rollup(people, teams, history, change):
    """Attack: store the cuts of every kind of range, then change a grant's seats, a price, a grant's state or
    dates, a free tool's price, team membership (also a swap keeping sizes), a team's slug, or delete a team.
    The served report must equal the live one at once (the cut no longer holds, or nothing it holds changed),
    after the rollup, and after the worker stores the cuts again. An auditor would otherwise be shown last
    hour's seat costs or team sizes."""
    start, today = history
    erin = people["erin"]
    ranges = _cut_ranges(start, today)
    pre = None
    if change == "free-tool-priced":
        aider = _aider_becomes_paid(people, teams)
        pre = lambda: AITool.objects.filter(pk=aider.pk).update(monthly_price_per_seat=Decimal("9"))  # noqa: E731
    for params in ranges:
        store_cuts(params)
    before = assert_served_is_live(erin, ranges, read={"cuts"})
    (pre or (lambda: CHANGES[change](people, teams)))()
    after = assert_served_is_live(erin, ranges)
    if change not in ("members-swapped", "revoke"):  # a grant revoked today costs what it did up to today
        assert after != before, "the change should show in the report"
    roll()  # (granting records usage events today: the numbers may move again here)
    rolled = assert_served_is_live(erin, ranges)
    for params in ranges:
        store_cuts(params)
    assert assert_served_is_live(erin, ranges, read={"cuts"}) == rolled


# --- the date ----------------------------------------------------------------------------------------------


def _ranges_ending_today(today: dt.date) -> list[ReportParams]:
    out = []
    if today.weekday() > 0:  # this week from a later day than Monday, to today
        out.append(ReportParams(date_from=today - dt.timedelta(days=min(3, today.weekday() - 1)), date_to=today))
    if today.day > 1:  # this month from its 10th (or 2nd) to today
        out.append(
            ReportParams(date_from=today.replace(day=10 if today.day >= 10 else 2), date_to=today, granularity="month")
        )
    return out


def test_a_cut_ending_today_is_dropped_when_todays_events_are_rolled_up(people, history):
    """Attack: a range that ends today and starts after its week's (month's) first day is a cut stored while
    today is still filling. New events today without a rollup: both reports agree (neither has them); after
    the rollup the cut is gone and the new events show; and tomorrow the same range, with no new events, is
    still served equal to live."""
    _start, today = history
    erin = people["erin"]
    ranges = _ranges_ending_today(today)
    if not ranges:
        pytest.skip("today is a Monday and the 1st: no range inside this week or month can end today and be cut")
    for params in ranges:
        assert store_cuts(params) == 1
    before = assert_served_is_live(erin, ranges, read={"cuts"})
    now = timezone.now()
    record_usage("agent_run_started", user=people["alice"], tool="claude-code", at=now, key="today-1")
    assert assert_served_is_live(erin, ranges, read={"cuts"}) == before
    roll()
    assert not UsagePeriodCut.objects.exists()
    after = assert_served_is_live(erin, ranges)
    assert [r["totals"]["agent_runs"] for r in after] == [r["totals"]["agent_runs"] + 1 for r in before]
    for params in ranges:
        store_cuts(params)
    assert assert_served_is_live(erin, ranges, read={"cuts"}) == after
    # tomorrow: the cut (written yesterday, nothing new since) is read, and says what the live report says
    tomorrow = now + dt.timedelta(days=1)
    assert_served_is_live(erin, ranges, now=tomorrow)


def test_a_cut_of_days_after_today_stays_equal_as_those_days_fill(people, history):
    """Attack: a range from a later day of this week into the future (allowed by the API) stores a cut of days
    that have no events yet. When events for them arrive and the rollup runs, it must not be served stale."""
    _start, today = history
    erin = people["erin"]
    sunday = period_of(today, "week") + dt.timedelta(days=6)
    if today.weekday() >= 5:
        pytest.skip("no later day of this week after tomorrow")
    first = today + dt.timedelta(days=1)
    params = ReportParams(date_from=first, date_to=sunday + dt.timedelta(weeks=1))
    assert store_cuts(params) == 1
    assert_served_is_live(erin, [params])
    later = dt.datetime.combine(first, dt.time(12), tzinfo=dt.UTC)
    record_usage("agent_run_started", user=people["alice"], tool="claude-code", at=later, key="future-1")
    roll(now=later + dt.timedelta(minutes=5))
    served = assert_served_is_live(erin, [params], now=later + dt.timedelta(minutes=10))[0]
    assert served["totals"]["agent_runs"] == 1


def test_only_one_end_stored_and_a_cut_shared_by_two_ranges(people, history):
    """Attack: a range cut at both ends with only its first cut stored (then only its last): the statement
    mixes a stored cut with live days. And a second range with the same first cut but another end reads the
    same stored cut. Both must equal the live report."""
    start, today = history
    erin = people["erin"]
    thursday = start + dt.timedelta(weeks=1, days=3)
    both = ReportParams(date_from=thursday, date_to=thursday + dt.timedelta(weeks=2, days=2))
    head, tail = cut_periods(both)
    assert cuts.store_cut_report("week", head[1], head[2])
    assert_served_is_live(erin, [both], read={"cuts", "days"})
    UsagePeriodCut.objects.all().delete()
    assert cuts.store_cut_report("week", tail[1], tail[2])
    assert_served_is_live(erin, [both], read={"cuts", "days"})
    assert cuts.store_cut_report("week", head[1], head[2])
    assert_served_is_live(erin, [both], read={"cuts"})
    # same first cut, ending today (whole weeks after it): reads the cut stored for the other range
    shared = ReportParams(date_from=thursday, date_to=today)
    assert_served_is_live(erin, [shared], read={"cuts"})


def test_a_week_cut_is_never_read_for_a_month_over_the_same_days_and_back(people, history):
    """Attack: the same days (a Thursday to a Sunday inside one month) are a week's cut and a month's cut. A
    stored week cut must not serve the month report, nor a month cut the week report."""
    start, _today = history
    erin = people["erin"]
    thursday = start + dt.timedelta(weeks=1, days=3)
    while (thursday + dt.timedelta(days=3)).month != thursday.month or thursday.day == 1:
        thursday += dt.timedelta(weeks=1)
    by_week = ReportParams(date_from=thursday, date_to=thursday + dt.timedelta(days=3))
    by_month = ReportParams(date_from=thursday, date_to=thursday + dt.timedelta(days=3), granularity="month")
    assert store_cuts(by_week) == 1
    assert_served_is_live(erin, [by_month], read={"days"})
    assert_served_is_live(erin, [by_week], read={"cuts"})
    UsagePeriodCut.objects.all().delete()
    assert store_cuts(by_month) == 1
    assert_served_is_live(erin, [by_week], read={"days"})
    assert_served_is_live(erin, [by_month], read={"cuts"})


def _new_year_history(people, teams) -> dt.date:
    """Usage around the latest new year that stored reports still cover: people active on both sides of it
    (the same person on Dec 31 and Jan 2 counts once in that week). Returns that Jan 1."""
    today = timezone.now().date()
    ny = dt.date(today.year, 1, 1) if today >= dt.date(today.year, 1, 15) else dt.date(today.year - 1, 1, 1)
    claude = ToolFactory(slug="claude-code", status="approved", monthly_price_per_seat=Decimal("30.00"))
    grant_services.grant_create(actor=people["bob"], team=teams["payments"], tool=claude, seats=3)
    AccessGrant.objects.update(created_at=at(ny - dt.timedelta(days=40)))
    crowd = [UserFactory(username=f"ny{i}") for i in range(5)]
    for user in crowd:
        user.groups.add(teams["payments"].group)
    day, n = ny - dt.timedelta(days=20), 0
    while day <= ny + dt.timedelta(days=20):
        for i, user in enumerate(crowd):
            if (day.toordinal() + i) % 2:
                continue
            n += 1
            record_usage("agent_run_started", user=user, tool=claude, at=at(day), key=f"ny{n}")
            if n % 3 == 0:
                record_usage(
                    "build_succeeded", user=user, at=at(day), duration_s=10 + n % 40, outcome="start", key=f"nyb{n}"
                )
        day += dt.timedelta(days=1)
    rollup_usage()
    return ny


def test_cuts_of_a_week_across_new_year(people, teams):
    """Attack: a week that spans new year (its days are in two years' user bitmaps) cut by the range at its
    start, at its end, and on both sides; by month around it too. Each stored cut must serve exactly the live
    numbers, a person active on both sides counting once."""
    ny = _new_year_history(people, teams)
    erin = people["erin"]
    key = period_of(ny, "week")
    if key == ny or key + dt.timedelta(days=1) == ny:
        pytest.skip("this new year's week does not put a cut's days on both sides of it")
    dec31, jan2 = ny - dt.timedelta(days=1), ny + dt.timedelta(days=1)
    ranges = [
        ReportParams(date_from=dec31, date_to=jan2),  # inside the week, across new year
        ReportParams(date_from=dec31, date_to=ny + dt.timedelta(days=14)),  # first cut across new year
        ReportParams(date_from=ny - dt.timedelta(days=15), date_to=jan2),  # last cut across new year
        ReportParams(date_from=ny - dt.timedelta(days=20), date_to=ny + dt.timedelta(days=12), granularity="month"),
    ]
    before = assert_served_is_live(erin, ranges)
    for params in ranges:
        store_cuts(params)
    assert assert_served_is_live(erin, ranges, read={"cuts"}) == before
    # the cut across new year counts distinct people (each of the five is active within any 3 days... or not)
    people_in = {f"ny{i}" for i in range(5) for d in (dec31, ny, jan2) if (d.toordinal() + i) % 2 == 0}
    row = next(r for r in before[0]["team_series"] if r["team"] == "payments")
    assert row["active_users"] == len(people_in)


# --- who reads cuts ----------------------------------------------------------------------------------------


def test_scoped_and_one_tool_reports_never_read_or_request_cuts_and_developers_get_403(people, teams, history, api):
    """Attack: with every cut stored (holding every team's numbers), a manager's scoped report, an auditor's
    one-team and one-tool reports must not read a cut nor ask a worker for one; a developer is refused (403).
    A manager reading an all-teams cut would see other teams' numbers in the totals."""
    start, today = history
    ranges = _cut_ranges(start, today)
    for params in ranges:
        store_cuts(params)
    asks = [f"goldpath:cut:{p.granularity}:{c[1]}:{c[2]}" for p in ranges for c in cut_periods(p)]
    cases = [(people["carol"], None, None), (people["erin"], "payments", None), (people["erin"], None, "claude-code")]
    for user, team, tool in cases:
        for params in ranges:
            scoped = ReportParams(params.date_from, params.date_to, params.granularity, team=team, tool=tool)
            UsagePeriodCut.objects.update(rows_json="[]")  # were a cut read, its rows would be empty
            cache.clear()
            served, read, live = both_ways(user, scoped)
            assert "cuts" not in read and served == live and served["rows"], (user, scoped)
            assert not any(cache.get(k) for k in asks), (user, scoped)
    with pytest.raises(NotPermitted):
        adoption_report(people["alice"], ranges[0])
    query = {"from": ranges[0].date_from.isoformat(), "to": ranges[0].date_to.isoformat()}
    assert api(people["alice"]).get("/api/v1/reports/adoption/", query).status_code == 403
    # control: the auditor's report over every team does read them (stored anew: the rows were blanked above)
    UsagePeriodCut.objects.all().delete()
    store_cuts(ranges[0])
    served, read, live = both_ways(people["erin"], ranges[0])
    assert "cuts" in read and served == live


# --- the task with hostile arguments -----------------------------------------------------------------------


def test_the_task_refuses_hostile_arguments_without_writing(people, history):
    """Attack: call the worker's task as a hostile caller could enqueue it: bad dates, an unknown kind, a whole
    period, days of two periods, days backwards, far past, future periods, the last representable dates.
    Each must refuse (ValueError) or decline (False) and write no row."""
    start, today = history
    monday = start + dt.timedelta(weeks=1)
    iso = dt.date.isoformat
    bad = [
        ("week", "not-a-date", iso(monday), iso(monday)),
        ("week", iso(monday), "2026-02-30", iso(monday)),
        ("week", iso(monday), iso(monday + dt.timedelta(days=2)), "tomorrow"),
        ("day", iso(monday), iso(monday + dt.timedelta(days=1)), iso(monday + dt.timedelta(days=1))),
        ("WEEK", iso(monday), iso(monday + dt.timedelta(days=1)), iso(monday + dt.timedelta(days=2))),
        ("week'; --", iso(monday), iso(monday + dt.timedelta(days=1)), iso(monday + dt.timedelta(days=2))),
        ("week", iso(monday), iso(monday), iso(monday + dt.timedelta(days=6))),  # whole
        ("week", iso(monday), iso(monday + dt.timedelta(days=3)), iso(monday + dt.timedelta(days=9))),  # two
        ("week", iso(monday), iso(monday + dt.timedelta(days=4)), iso(monday + dt.timedelta(days=2))),  # backwards
        ("month", "2026-01-01", "2026-01-30", "2026-02-02"),  # two months
        (
            "week",
            iso(monday + dt.timedelta(days=4)),
            iso(monday + dt.timedelta(days=1)),
            iso(monday + dt.timedelta(days=2)),
        ),
        ("week", "9999-12-27", "9999-12-28", "9999-12-30"),  # last representable week: no next period
        ("month", "9999-12-01", "9999-12-02", "9999-12-30"),  # last representable month
    ]
    declined = [
        ("week", "2001-01-01", "2001-01-03", "2001-01-05"),  # far past: not stored
        ("week", "0001-01-01", "0001-01-02", "0001-01-03"),  # the first representable week
        (
            "week",
            iso(period_of(today, "week") + dt.timedelta(weeks=3)),
            iso(period_of(today, "week") + dt.timedelta(weeks=3, days=2)),
            iso(period_of(today, "week") + dt.timedelta(weeks=3, days=4)),
        ),  # a future week
    ]
    problems = []
    for args in bad:
        try:
            result = store_cut_task.run(*args)
        except ValueError:
            continue
        except Exception as exc:  # noqa: BLE001 - what the worker would log instead of a clean refusal
            problems.append(f"{args}: {type(exc).__name__}: {exc}")
            continue
        problems.append(f"{args}: accepted ({result})")
    for args in declined:
        try:
            result = store_cut_task.run(*args)
        except ValueError:
            continue
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{args}: {type(exc).__name__}: {exc}")
            continue
        if result is not False:
            problems.append(f"{args}: wrote ({result})")
    assert not UsagePeriodCut.objects.exists()
    assert not problems, "\n".join(problems)


def test_a_lying_period_key_does_not_store_a_cut_under_another_period(people, history):
    """Attack: the task's `start` is the caller's word. A start weeks before the days must not file the cut
    under that period (a report for that period would then read days of another week)."""
    start, today = history
    thursday = start + dt.timedelta(weeks=2, days=3)
    assert store_cut_task.run(
        "week", start.isoformat(), thursday.isoformat(), (thursday + dt.timedelta(days=2)).isoformat()
    )
    assert overall_cuts() == {("week", period_of(thursday, "week"), thursday, thursday + dt.timedelta(days=2))}
    params = ReportParams(date_from=start + dt.timedelta(days=3), date_to=today)  # the week of `start`, cut
    assert_served_is_live(people["erin"], [params])


# --- many ranges --------------------------------------------------------------------------------------------


def test_many_distinct_ranges_keep_at_most_the_cap_and_every_range_stays_equal(people, history):
    """Attack: script 40 distinct ranges (each its own cut), as a reader filling the database would. At most
    CUT_MAX cuts are kept, no team x tool row outlives its cut, and every range, its cut kept or evicted,
    is served equal to live."""
    start, today = history
    erin = people["erin"]
    ranges = []
    for week in range(1, 5):
        monday = start + dt.timedelta(weeks=week)
        for a in range(1, 7):
            for b in range(a, 7):
                ranges.append(
                    ReportParams(date_from=monday + dt.timedelta(days=a), date_to=monday + dt.timedelta(days=b))
                )
    ranges = ranges[:40]
    for params in ranges:
        assert store_cuts(params) == 1
    kept = overall_cuts()
    assert len(kept) == cuts.CUT_MAX
    assert set(UsagePeriodCut.objects.values_list("kind", "start", "first_day", "last_day").distinct()) == kept
    wanted = {
        ("week", r.date_from - dt.timedelta(days=r.date_from.weekday()), r.date_from, r.date_to) for r in ranges[-32:]
    }
    assert kept == wanted
    assert_served_is_live(erin, ranges[:4], read={"days"})
    assert_served_is_live(erin, ranges[-4:], read={"cuts"})


# --- concurrency with the rollup (PostgreSQL: two connections) ----------------------------------------------


def _in_thread(fn, out: dict, name: str):
    def run():
        try:
            out[name] = fn()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            out[name] = exc
        finally:
            connections.close_all()

    t = threading.Thread(target=run)
    t.start()
    return t


@pytest.mark.skipif(not PG, reason="row locks between two connections: PostgreSQL")
def test_a_cut_stored_while_the_rollup_rebuilds_its_days_waits_and_includes_them(
    people, teams, history, transactional_db
):
    """Attack: the rollup holds its lock and has rebuilt a cut's day with a late event, not yet committed; the
    worker stores that cut meanwhile. It must wait for the lock and write the cut with the event (not from the
    days as they were), so the next report is not stale for a week."""
    start, today = history
    erin = people["erin"]
    params = _cut_ranges(start, today)[0]
    ((_k, first, last),) = cut_periods(params)
    before = assert_served_is_live(erin, [params])[0]
    record_usage("agent_run_started", user=people["alice"], tool="claude-code", at=at(first), key="race-1")
    out: dict = {}
    locked, release = threading.Event(), threading.Event()

    def rollup_holding_the_lock():
        with transaction.atomic():
            state, _ = RollupState.objects.get_or_create(name="usage")
            RollupState.objects.select_for_update().get(pk=state.pk)
            _rebuild_days([first])
            locked.set()
            release.wait(20)
        return True

    a = _in_thread(rollup_holding_the_lock, out, "rollup")
    assert locked.wait(20)
    b = _in_thread(lambda: cuts.store_cut_report("week", first, last), out, "store")
    b.join(1.5)
    assert b.is_alive(), "the store did not wait for the rollup's lock"
    release.set()
    a.join(20)
    b.join(20)
    assert out == {"rollup": True, "store": True}, out
    served, read, live = both_ways(erin, params)
    assert "cuts" in read and served == live
    assert served["totals"]["agent_runs"] == before["totals"]["agent_runs"] + 1


@pytest.mark.skipif(not PG, reason="row locks between two connections: PostgreSQL")
def test_stores_racing_rollups_never_leave_a_stale_cut(people, teams, history, transactional_db):
    """Attack: workers store cuts while rollups fold late events into those cuts' days, all at once, a few
    rounds. Whatever interleaving happens, every cut left is either gone or says exactly what live says."""
    start, today = history
    erin = people["erin"]
    ranges = _cut_ranges(start, today)
    targets = [(p.granularity, c[1], c[2]) for p in ranges for c in cut_periods(p)]
    for n in range(3):
        for i, (_kind, first, _last) in enumerate(targets):
            record_usage("agent_run_started", user=people["alice"], tool="aider", at=at(first), key=f"r{n}-{i}")
        out: dict = {}
        threads = [_in_thread(lambda t=t: cuts.store_cut_report(*t), out, f"s{i}") for i, t in enumerate(targets)]
        threads.append(_in_thread(roll, out, "rollup"))
        for t in threads:
            t.join(60)
        assert not [v for v in out.values() if isinstance(v, Exception)], out
        assert_served_is_live(erin, ranges)
    roll()
    for t in targets:
        cuts.store_cut_report(*t)
    assert_served_is_live(erin, ranges, read={"cuts"})


def test_a_range_at_the_end_of_the_calendar_is_a_400_not_a_500(people, api):
    """Attack (the same endpoint, before any cut logic): an auditor asks for a range in the last week or month
    the calendar has. The periods after it cannot be computed; the API must answer 400 (a bad range), not 500."""
    client = api(people["erin"])
    for query in (
        {"from": "9999-12-28", "to": "9999-12-30"},
        {"from": "9999-12-02", "to": "9999-12-30", "granularity": "month"},
    ):
        assert client.get("/api/v1/reports/adoption/", query).status_code == 400, query
