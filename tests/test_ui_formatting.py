"""Human text instead of reprs and codes (issue 14), and the adoption report's funnel and partial periods.

The `goldpath_format` template filters are shared by every page that shows audit details, change summaries,
target types and policy reasons (the audit log uses them too)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.template import Context, Template
from django.utils import timezone

from catalog.reports.funnel import funnel_stages
from catalog.reports.rollup import rollup_usage
from catalog.services import access
from catalog.templatetags.goldpath_format import grant_can_help, payload_details, reason_label, target_type_label
from catalog.usage import record_usage
from tests.factories import PASSWORD, ToolFactory

pytestmark = pytest.mark.django_db


def render(text: str, **context) -> str:
    return Template("{% load goldpath_format %}" + text).render(Context(context))


def test_audit_payloads_read_as_words(teams):
    platform, payments = teams["platform"], teams["payments"]
    details = payload_details(
        {
            "approvers": ["bob", "frank"],
            "changes": {"owner_team": [str(platform.pk), str(payments.pk)], "risk_tier": ["low", "high"]},
            "approvals_cleared": 2,
            "with_tool": True,
            "reason": "",
            "from": "in_review",
            "to": "approved",
        }
    )
    assert details == [
        ("Approvers", "bob, frank"),
        ("Owner team", "Platform → Payments"),
        ("Risk tier", "low → high"),
        ("Approvals cleared", "2"),
        ("With the tool", "yes"),
        ("From", "in review"),
        ("To", "approved"),
    ]
    # a tool's proposal stores its owner team's id: the page names the team
    assert ("Owner team", "Platform") in payload_details({"owner_team": str(platform.pk), "slug": "aider"})
    assert ("Owner team", "team #999999") in payload_details({"owner_team": "999999"})
    html = render(
        "{% for k, v in p|payload_details %}{{ k }}: {{ v }}; {% endfor %}", p={"approvers": ["bob", "frank"]}
    )
    assert html == "Approvers: bob, frank; " and "[" not in html


def test_lists_types_and_codes_read_as_words():
    assert render("{{ v|human_list }}", v=["bob", "frank"]) == "bob, frank"
    assert render("{{ v|human_list }}", v=list(range(30))).endswith("and 10 more")
    assert target_type_label("aitool") == "AI tool" and target_type_label("accessgrant") == "grant"
    assert target_type_label("agentrun") == "agent run" and target_type_label("mystery_thing") == "mystery thing"
    assert reason_label("no_grant") == "No grant for your team"
    assert reason_label("tool_banned") == "Tool banned" and reason_label("new_code") == "New code"
    assert render("{{ c|reason_label }}", c="classification_above_tool") == "Data too sensitive for the tool"


def test_a_grant_helps_only_with_access_reasons():
    assert grant_can_help([{"code": "no_grant"}]) and grant_can_help(["grant_expired", "classification_above_grant"])
    assert not grant_can_help(["no_grant", "tool_banned"]) and not grant_can_help(["review_expired"])
    assert not grant_can_help([]) and not grant_can_help(["classification_above_tool"])


def test_the_funnel_keeps_counts_and_shares_apart():
    stages = funnel_stages(4, 2, 1, 7)
    assert [(s["stage"], s["count"]) for s in stages] == [
        ("requested", 4),
        ("granted", 2),
        ("first_use", 1),
        ("accepted_agent_result", 7),
    ]
    assert [s["rate"] for s in stages] == [None, 0.5, 0.5, None]  # no share across different things
    assert all(s["unit"] for s in stages) and stages[3]["unit"] == "accepted agent results"
    assert funnel_stages(0, 0, 0, 0)[1]["rate"] is None


def test_the_report_marks_the_current_week_partial(people, teams, api):
    tool = ToolFactory(slug="aider", name="Aider", status="approved")
    access.access_request_create(actor=people["alice"], tool=tool, team=teams["payments"], justification="x")
    access.grant_create(actor=people["bob"], team=teams["search"], tool=tool)
    record_usage("agent_run_started", user=people["alice"], tool=tool, at=timezone.now(), key="run:ui:1")
    rollup_usage()
    report = api(people["erin"]).get("/api/v1/reports/adoption/", {"granularity": "week"}).json()
    assert [p["partial"] for p in report["periods"]] == [False] * 11 + [True]
    monday = timezone.now().date() - dt.timedelta(days=timezone.now().weekday())
    cut = api(people["erin"]).get(
        "/api/v1/reports/adoption/", {"granularity": "week", "from": str(monday - dt.timedelta(days=10))}
    )
    assert [p["partial"] for p in cut.json()["periods"]] == [True, False, True]  # cut at the start, and running
    funnel = {s["stage"]: s for s in report["funnel"]}
    assert funnel["requested"]["count"] == 1 and funnel["granted"]["count"] == 1 and funnel["granted"]["rate"] == 1.0

    from django.test import Client

    client = Client()
    assert client.login(username="erin", password=PASSWORD)
    html = client.get("/reports/adoption/?granularity=week").content.decode()
    current = report["periods"][-1]["period_start"]
    assert "Partial week, drawn dashed or pale" in html and current in html
    assert "not comparable with a whole week" in html
    assert "team and tool pairs used for the first time" in html and "100%" in html
    assert f'{current} <span class="badge plain status-pending"' in html  # its rows are marked too
