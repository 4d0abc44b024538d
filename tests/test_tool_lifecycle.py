"""The tool lifecycle through the API: every transition allowed and refused, and the approval rules."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from catalog.models import AITool, AuditEvent, ToolApproval
from catalog.services import tools as tool_services
from tests.factories import ToolFactory

pytestmark = pytest.mark.django_db

ALL_STATES = ["proposed", "in_review", "approved", "deprecated", "retired", "rejected", "banned"]
# action -> states it is allowed from -> resulting state
EXPECTED = {
    "request-review": ({"proposed", "rejected"}, "in_review"),
    "approve": ({"in_review"}, "approved"),
    "reject": ({"proposed", "in_review"}, "rejected"),
    "deprecate": ({"approved"}, "deprecated"),
    "retire": ({"deprecated"}, "retired"),
    "ban": (set(ALL_STATES) - {"banned"}, "banned"),
    "reinstate": ({"banned"}, "in_review"),
}
# action -> its audit verb (past tense)
VERBS = {
    "request-review": "tool.review_requested",
    "approve": "tool.approved",
    "reject": "tool.rejected",
    "deprecate": "tool.deprecated",
    "retire": "tool.retired",
    "ban": "tool.banned",
    "reinstate": "tool.reinstated",
}


def _actor_for(action: str, people):
    return people["admin"] if action == "reinstate" else people["bob"]


@pytest.mark.parametrize("action", list(EXPECTED))
@pytest.mark.parametrize("state", ALL_STATES)
def test_every_transition_allowed_or_refused(api, people, teams, action, state):
    tool = ToolFactory(status=state, risk_tier="low", proposed_by=people["alice"], owner_team=teams["platform"])
    allowed_from, target = EXPECTED[action]
    before = AuditEvent.objects.count()
    response = api(_actor_for(action, people)).post(
        f"/api/v1/tools/{tool.slug}/{action}/", {"reason": "because"}, format="json"
    )
    tool.refresh_from_db()
    if state in allowed_from:
        assert response.status_code == 200, response.content
        assert response.json()["status"] == target
        assert tool.status == target
        event = AuditEvent.objects.filter(target_type="aitool", target_id=str(tool.pk)).first()
        assert event.verb == VERBS[action]
        assert event.payload["from"] == state and event.payload["to"] == target
        assert event.target_repr == tool.slug
    else:
        assert response.status_code == 409, response.content
        assert "detail" in response.json()
        assert tool.status == state
        assert AuditEvent.objects.count() == before


def test_nobody_approves_their_own_proposal(api, people, teams):
    tool = ToolFactory(status="in_review", proposed_by=people["bob"], owner_team=teams["platform"])
    response = api(people["bob"]).post(f"/api/v1/tools/{tool.slug}/approve/", {"reason": "mine"}, format="json")
    assert response.status_code == 409
    assert "proposed" in response.json()["detail"]
    tool.refresh_from_db()
    assert tool.status == "in_review" and not tool.approvals.exists()


def test_high_risk_needs_two_distinct_approvers(api, people, teams):
    tool = ToolFactory(status="in_review", risk_tier="high", proposed_by=people["alice"], owner_team=teams["platform"])
    first = api(people["bob"]).post(f"/api/v1/tools/{tool.slug}/approve/", {"reason": "ok"}, format="json")
    assert first.status_code == 200
    assert first.json()["status"] == "in_review"
    assert first.json()["approvals"] == ["bob"]
    assert first.json()["approvals_required"] == 2

    again = api(people["bob"]).post(f"/api/v1/tools/{tool.slug}/approve/", {"reason": "ok"}, format="json")
    assert again.status_code == 409
    tool.refresh_from_db()
    assert tool.status == "in_review" and tool.approvals.count() == 1

    second = api(people["frank"]).post(f"/api/v1/tools/{tool.slug}/approve/", {"reason": "ok"}, format="json")
    assert second.status_code == 200
    tool.refresh_from_db()
    assert tool.status == "approved"
    assert tool.review_due == timezone.localdate() + dt.timedelta(days=180)
    event = AuditEvent.objects.filter(verb="tool.approved", target_id=str(tool.pk)).get()
    assert sorted(event.payload["approvers"]) == ["bob", "frank"]


@pytest.mark.parametrize("clearing", ["reject", "ban"])
def test_reject_and_ban_clear_collected_approvals(api, people, teams, clearing):
    tool = ToolFactory(status="in_review", risk_tier="high", proposed_by=people["alice"], owner_team=teams["platform"])
    api(people["bob"]).post(f"/api/v1/tools/{tool.slug}/approve/", {"reason": "ok"}, format="json")
    assert ToolApproval.objects.filter(tool=tool).count() == 1
    assert (
        api(people["frank"]).post(f"/api/v1/tools/{tool.slug}/{clearing}/", {"reason": "no"}, format="json").status_code
        == 200
    )
    assert ToolApproval.objects.filter(tool=tool).count() == 0
    # back in review, bob's earlier approval no longer counts: one approval is not enough
    if clearing == "reject":
        api(people["alice"]).post(f"/api/v1/tools/{tool.slug}/request-review/", {}, format="json")
    else:
        api(people["admin"]).post(f"/api/v1/tools/{tool.slug}/reinstate/", {"reason": "fixed"}, format="json")
    response = api(people["frank"]).post(f"/api/v1/tools/{tool.slug}/approve/", {"reason": "ok"}, format="json")
    assert response.json()["status"] == "in_review"


def test_risk_tier_change_clears_approvals(api, people, teams):
    tool = ToolFactory(status="in_review", risk_tier="high", proposed_by=people["alice"], owner_team=teams["platform"])
    api(people["bob"]).post(f"/api/v1/tools/{tool.slug}/approve/", {"reason": "ok"}, format="json")
    response = api(people["frank"]).patch(f"/api/v1/tools/{tool.slug}/", {"risk_tier": "medium"}, format="json")
    assert response.status_code == 200
    assert response.json()["approvals"] == []
    event = AuditEvent.objects.filter(verb="tool.updated").get()
    assert event.payload["changes"]["risk_tier"] == ["high", "medium"]
    assert event.payload["approvals_cleared"] == 1


def test_raising_risk_of_approved_tool_sends_it_back_to_review(api, people, teams):
    tool = ToolFactory(status="approved", risk_tier="low", proposed_by=people["alice"], owner_team=teams["platform"])
    response = api(people["bob"]).patch(f"/api/v1/tools/{tool.slug}/", {"risk_tier": "high"}, format="json")
    assert response.json()["status"] == "in_review"


def test_proposer_may_request_review_but_not_another_developer(api, people, teams):
    tool = ToolFactory(status="proposed", proposed_by=people["alice"], owner_team=teams["platform"])
    assert api(people["dave"]).post(f"/api/v1/tools/{tool.slug}/request-review/", {}, format="json").status_code == 403
    tool.refresh_from_db()
    assert tool.status == "proposed"
    assert api(people["alice"]).post(f"/api/v1/tools/{tool.slug}/request-review/", {}, format="json").status_code == 200


def test_reinstate_is_admin_only(api, people, teams):
    tool = ToolFactory(status="banned", owner_team=teams["platform"])
    assert (
        api(people["bob"]).post(f"/api/v1/tools/{tool.slug}/reinstate/", {"reason": "x"}, format="json").status_code
        == 403
    )
    assert (
        api(people["admin"]).post(f"/api/v1/tools/{tool.slug}/reinstate/", {"reason": "x"}, format="json").status_code
        == 200
    )


def test_reason_required_for_reject(api, people, teams):
    tool = ToolFactory(status="in_review", owner_team=teams["platform"])
    response = api(people["bob"]).post(f"/api/v1/tools/{tool.slug}/reject/", {}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()["errors"]
    tool.refresh_from_db()
    assert tool.status == "in_review"


def test_review_due_warns_then_expires(people, teams):
    today = timezone.localdate()
    soon = ToolFactory(
        slug="soon", status="approved", review_due=today + dt.timedelta(days=10), owner_team=teams["platform"]
    )
    late = ToolFactory(slug="late", status="approved", review_due=today, owner_team=teams["platform"])
    ToolApproval.objects.create(tool=late, reviewer=people["bob"])
    result = tool_services.tools_review_due(today=today)
    assert result == {"expired": ["late"], "warned": ["soon"]}
    late.refresh_from_db()
    assert late.status == "in_review" and late.review_due is None
    assert not late.approvals.exists()
    assert AuditEvent.objects.filter(verb="tool.review_expired", actor_repr="system", target_repr="late").exists()
    assert AuditEvent.objects.filter(verb="tool.review_warning_sent", target_repr="soon").exists()
    # rerunning the same day changes nothing
    assert tool_services.tools_review_due(today=today) == {"expired": [], "warned": []}
    soon.refresh_from_db()
    assert soon.status == "approved"


def test_tool_versions(api, people, teams):
    tool = ToolFactory(status="approved", owner_team=teams["platform"])
    url = f"/api/v1/tools/{tool.slug}/versions/"
    ok = api(people["bob"]).post(
        url, {"version": "1.2.3", "launch_command": ["acme", "run", "{prompt}"], "models": ["m1"]}, format="json"
    )
    assert ok.status_code == 201, ok.content
    assert ok.json()["launch_command"] == ["acme", "run", "{prompt}"]
    listing = api(people["alice"]).get(url)
    assert [v["version"] for v in listing.json()["results"]] == ["1.2.3"]
    dup = api(people["bob"]).post(url, {"version": "1.2.3", "launch_command": ["a", "{prompt}"]}, format="json")
    assert dup.status_code == 400 and "version" in dup.json()
    shell = api(people["bob"]).post(
        url, {"version": "2", "launch_command": ["bash", "-c", "acme {prompt}"]}, format="json"
    )
    assert shell.status_code == 400 and "launch_command" in shell.json()
    noprompt = api(people["bob"]).post(url, {"version": "3", "launch_command": ["acme"]}, format="json")
    assert noprompt.status_code == 400
    as_string = api(people["bob"]).post(url, {"version": "4", "launch_command": "acme {prompt}"}, format="json")
    assert as_string.status_code == 400
    assert (
        api(people["alice"]).post(url, {"version": "5", "launch_command": ["a", "{prompt}"]}, format="json").status_code
        == 403
    )
    assert AITool.objects.get(pk=tool.pk).versions.count() == 1
