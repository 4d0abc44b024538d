"""`goldpath reports adoption`: the portal's CSV export byte for byte, JSON, a table, and refusals."""

from __future__ import annotations

import datetime as dt

import pytest

from catalog.services import access
from tests.workspace_helpers import granted_tools

pytestmark = pytest.mark.django_db(transaction=True)


def test_adoption_csv_json_and_table(goldpath, api, people, teams):
    tools = granted_tools(people, teams)
    access.access_request_create(
        actor=people["alice"], tool=tools["copilot"], team=teams["payments"], justification="x"
    )
    today = dt.date.today()
    start = (today - dt.timedelta(days=13)).isoformat()
    goldpath.login("carol")  # a manager of payments and search
    csv = goldpath("reports", "adoption", "--from", start, "--to", today.isoformat(), "--csv")
    assert csv.code == 0, csv
    expected = api(people["carol"]).get(
        "/api/v1/reports/adoption/", {"from": start, "to": today.isoformat(), "format": "csv"}
    )
    assert csv.out == expected.content.decode()
    assert csv.out.startswith("period_start,period_end,team,tool,active_users,")

    report = goldpath(
        "reports", "adoption", "--from", start, "--to", today.isoformat(), "--granularity", "day", "--json"
    )
    assert report.code == 0, report
    assert report.json["from"] == start and report.json["granularity"] == "day" and len(report.json["periods"]) == 14
    table = goldpath("reports", "adoption", "--from", start, "--to", today.isoformat())
    assert table.code == 0 and f"Adoption {start} to {today.isoformat()} by week" in table.out


def test_adoption_refusals(goldpath, people):
    goldpath.login("carol")
    bad = goldpath("reports", "adoption", "--from", "yesterday")
    assert bad.code == 2 and "--from 'yesterday': give a date as YYYY-MM-DD." in bad.err
    backwards = goldpath("reports", "adoption", "--from", "2025-02-01", "--to", "2025-01-01")
    assert backwards.code == 1 and "from: `from` must not be after `to`." in backwards.err
    goldpath.login("alice")
    developer = goldpath("reports", "adoption", "--csv")
    assert developer.code == 1 and developer.out == ""
