"""Model usage in the adoption report: the gateway's `model_call` events (tokens in and out, model cost) summed
per day x team x tool by the rollup, and shown per row and in the totals of the API, the CSV, the page and the
command; stored period rows written before these columns get them on the next rollup."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from catalog.models import RollupState, UsageDaily, UsageEvent, UsagePeriod, UsagePeriodTotal
from catalog.reports.adoption import adoption_report, report_json
from catalog.reports.params import parse_params
from catalog.reports.rollup import ROWS_VERSION, rollup_usage
from catalog.reports.rowsql import ROW_FIELDS
from catalog.usage import record_usage
from tests.factories import ToolFactory

pytestmark = pytest.mark.django_db

REPORT = "/api/v1/reports/adoption/"
TOKEN_FIELDS = ["input_tokens", "output_tokens", "model_cost"]


def at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def last_monday() -> dt.date:
    today = timezone.now().date()
    return today - dt.timedelta(days=today.weekday()) - dt.timedelta(weeks=1)


@pytest.fixture
def calls(people, teams):
    """Last week: two calls of alice's (payments) through claude-code on Monday, one on Tuesday; one of dave's
    (search) through codex-cli."""
    claude = ToolFactory(slug="claude-code", status="approved")
    codex = ToolFactory(slug="codex-cli", status="approved")
    d = last_monday()
    alice, dave = people["alice"], people["dave"]
    for i, (day, who, tool, inp, out, cost) in enumerate(
        [
            (d, alice, claude, 1200, 300, "0.008100"),
            (d, alice, claude, 800, 100, "0.003900"),
            (d + dt.timedelta(days=1), alice, claude, 5000, 1000, "0.030000"),
            (d, dave, codex, 400, 50, "0.001000"),
        ]
    ):
        record_usage(
            "model_call",
            user=who,
            tool=tool,
            at=at(day),
            input_tokens=inp,
            output_tokens=out,
            model_cost=Decimal(cost),
            key=f"model_call:{i}",
        )
    rollup_usage()
    return d


def row(rows, day, team, tool):
    return next(r for r in rows if r["period_start"] == str(day) and r["team"] == team and r["tool"] == tool)


def test_record_usage_keeps_the_numbers_on_the_event(people, teams):
    event = record_usage(
        "model_call",
        user=people["alice"],
        tool="claude-code",
        input_tokens=10,
        output_tokens=2,
        model_cost=Decimal("0.00004"),
    )
    assert (event.kind, event.team_slug, event.tool_slug) == ("model_call", "payments", "claude-code")
    stored = UsageEvent.objects.get(pk=event.pk)
    assert (stored.input_tokens, stored.output_tokens, stored.model_cost) == (10, 2, Decimal("0.000040"))
    assert stored.cost is None  # model spend is not the per-use cost


def test_rollup_sums_tokens_and_cost_per_day_team_and_tool(calls):
    d = calls
    daily = UsageDaily.objects.get(day=d, team_slug="payments", tool_slug="claude-code")
    assert (daily.input_tokens, daily.output_tokens, daily.model_cost) == (2000, 400, Decimal("0.012000"))
    week = UsagePeriod.objects.get(kind="week", start=d, team_slug="payments", tool_slug="claude-code")
    assert (week.input_tokens, week.output_tokens, week.model_cost) == (7000, 1400, Decimal("0.042000"))
    overall = UsagePeriodTotal.objects.get(kind="week", start=d, team_slug="*", tool_slug="*")
    assert (overall.input_tokens, overall.output_tokens, overall.model_cost) == (7400, 1450, Decimal("0.043000"))


def test_report_rows_and_totals_have_tokens_and_model_cost(api, people, calls):
    d = calls
    client = api(people["erin"])
    by_day = client.get(REPORT, {"from": d, "to": d + dt.timedelta(days=6), "granularity": "day"}).json()
    monday = row(by_day["rows"], d, "payments", "claude-code")
    assert (monday["input_tokens"], monday["output_tokens"], monday["model_cost"]) == (2000, 400, 0.012)
    tuesday = row(by_day["rows"], d + dt.timedelta(days=1), "payments", "claude-code")
    assert (tuesday["input_tokens"], tuesday["output_tokens"], tuesday["model_cost"]) == (5000, 1000, 0.03)
    totals = by_day["totals"]
    assert (totals["input_tokens"], totals["output_tokens"], totals["model_cost"]) == (7400, 1450, 0.043)
    assert totals["estimated_cost"] == 0  # model spend is its own column

    # the whole week (stored with the period) and a clipped one (computed from the days) say the same
    for to in (d + dt.timedelta(days=6), d + dt.timedelta(days=5)):
        week = client.get(REPORT, {"from": d, "to": to}).json()
        claude = row(week["rows"], d, "payments", "claude-code")
        assert (claude["input_tokens"], claude["output_tokens"], claude["model_cost"]) == (7000, 1400, 0.042)
        assert week["totals"]["model_cost"] == 0.043
    # a manager of payments sees payments' spend only
    mine = api(people["carol"]).get(REPORT, {"from": d, "to": d + dt.timedelta(days=6), "team": "payments"}).json()
    assert mine["totals"]["input_tokens"] == 7000 and {r["team"] for r in mine["rows"]} == {"payments"}


def test_stored_and_live_reports_agree(people, calls):
    d = calls
    params = parse_params({"from": str(d), "to": str(d + dt.timedelta(days=6))})
    stored = adoption_report(people["erin"], params)
    live = adoption_report(people["erin"], params, stored=False)
    assert report_json(stored).replace(stored["generated_at"], "") == report_json(live).replace(
        live["generated_at"], ""
    )


def test_csv_page_and_command_show_the_columns(api, client, people, calls, capsys):
    d = calls
    assert ROW_FIELDS[-3:] == TOKEN_FIELDS  # appended: scripts reading by position keep working
    response = api(people["bob"]).get(REPORT, {"from": d, "to": d + dt.timedelta(days=6), "format": "csv"})
    parsed = list(csv.DictReader(io.StringIO(response.content.decode())))
    claude = next(r for r in parsed if r["tool"] == "claude-code")
    assert (claude["input_tokens"], claude["output_tokens"], claude["model_cost"]) == ("7000", "1400", "0.042")

    client.force_login(people["carol"])
    html = client.get("/reports/adoption/", {"from": d, "to": d + dt.timedelta(days=6)}).content.decode()
    assert "<th>Tokens in</th><th>Tokens out</th><th>Model cost</th>" in html
    assert "<td>7000</td><td>1400</td><td>$0.0420</td>" in html
    kpi = re.search(r'id="kpi-model-usage">(.*?)</div>', html).group(1)
    assert "$0.04" in kpi and "7400 tokens in, 1450 out" in kpi

    call_command("adoption_report", "--from", str(d), "--to", str(d + dt.timedelta(days=6)), "--format", "csv")
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith(",input_tokens,output_tokens,model_cost")
    call_command("adoption_report", "--from", str(d), "--to", str(d + dt.timedelta(days=6)), "--format", "json")
    totals = json.loads(capsys.readouterr().out)["totals"]
    assert (totals["input_tokens"], totals["output_tokens"], totals["model_cost"]) == (7400, 1450, 0.043)


def test_a_tiny_model_cost_is_not_written_in_exponent_notation(api, people, teams):
    d = last_monday()
    record_usage(
        "model_call", user=people["alice"], tool="claude-code", at=at(d), input_tokens=20, model_cost="0.00008"
    )
    rollup_usage()
    response = api(people["erin"]).get(REPORT, {"from": d, "to": d, "granularity": "day", "format": "csv"})
    [parsed] = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert parsed["model_cost"] == "0.000080"


def test_rows_stored_before_the_columns_get_them_on_the_next_rollup(api, people, calls):
    """An installation upgraded with stored period rows of the old shape: the next rollup rewrites them once."""
    d = calls
    old_shape = re.compile(r', "(input_tokens|output_tokens|model_cost)": [^,}]*')
    for period in UsagePeriod.objects.exclude(row_json=None):
        UsagePeriod.objects.filter(pk=period.pk).update(row_json=old_shape.sub("", period.row_json))
    for total in UsagePeriodTotal.objects.exclude(rows_json=None):
        UsagePeriodTotal.objects.filter(pk=total.pk).update(rows_json=old_shape.sub("", total.rows_json))
    RollupState.objects.filter(name=ROWS_VERSION).delete()
    client = api(people["erin"])
    stale = client.get(REPORT, {"from": d, "to": d + dt.timedelta(days=6)}).json()["rows"]
    assert "model_cost" not in row(stale, d, "payments", "claude-code")  # what an upgrade starts from

    rollup_usage()  # no new events
    rows = client.get(REPORT, {"from": d, "to": d + dt.timedelta(days=6)}).json()["rows"]
    assert row(rows, d, "payments", "claude-code")["model_cost"] == 0.042
    assert RollupState.objects.filter(name=ROWS_VERSION).exists()


def test_the_demo_history_has_model_usage(settings, client):
    settings.DEBUG = True
    call_command("seed_demo", verbosity=0)
    calls = UsageEvent.objects.filter(source="demo-seed", kind="model_call")
    runs = UsageEvent.objects.filter(source="demo-seed", kind="agent_run_finished")
    assert calls.count() == runs.count() > 0  # one model_call event per demo agent run
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.get(username="carol"))
    html = client.get("/reports/adoption/").content.decode()
    kpi = re.search(r'id="kpi-model-usage">(.*?)</div>', html).group(1)
    assert "$0.00" not in kpi and " 0 tokens in" not in kpi
