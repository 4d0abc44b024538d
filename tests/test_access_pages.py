"""Tool access pages: the why-not panel, request access, team page, queue, simulator, out of policy."""

from __future__ import annotations

import pytest

from catalog.models import AccessGrant, AccessRequest
from catalog.services import access
from tests.factories import PASSWORD, ToolFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tools(teams):
    return {
        "aider": ToolFactory(slug="aider", name="Aider", status="approved"),
        "continue": ToolFactory(slug="continue", name="Continue", status="approved"),
    }


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_panel_says_why_and_request_access_goes_to_the_queue(client, people, tools, teams):
    login(client, people["alice"])
    page = client.get("/tools/continue/").content.decode()
    assert "Not allowed" in page and "No grant for your team" in page and "Request access" in page
    r = client.post(
        "/tools/continue/request-access/", {"team": "payments", "justification": "IDE help"}, HTTP_HX_REQUEST="true"
    )
    assert r.status_code == 200 and "Request sent" in r.content.decode()
    req = AccessRequest.objects.get()
    assert (req.team.slug, req.requester.username, req.status) == ("payments", "alice", "pending")
    # alice cannot decide it; bob sees it in the queue and approves
    assert client.post(f"/access-requests/{req.pk}/approve/").status_code == 403
    client.logout()
    login(client, people["bob"])
    queue = client.get("/access-requests/").content.decode()
    assert "IDE help" in queue and "Approve" in queue
    r = client.post(f"/access-requests/{req.pk}/approve/", {"reason": "ok"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and "Approved" in r.content.decode()
    assert AccessGrant.objects.filter(team=teams["payments"], tool=tools["continue"], state="active").exists()
    client.logout()
    login(client, people["alice"])
    panel = client.get("/tools/continue/access-panel/?classification=internal").content.decode()
    assert "Allowed" in panel
    panel = client.get("/tools/continue/access-panel/?classification=restricted").content.decode()
    assert "Data too sensitive for the tool" in panel and "classification_above_tool" not in panel


def test_team_page_shows_tools_and_lets_platform_grant_and_revoke(client, people, tools, teams):
    access.grant_create(actor=people["bob"], team=teams["payments"], tool=tools["aider"], seats=4)
    login(client, people["alice"])
    page = client.get("/teams/payments/").content.decode()
    assert "Aider" in page and "usable" in page and "Revoke" not in page
    assert "You may not read" in client.get("/teams/search/").content.decode()
    assert client.post("/teams/payments/grants/", {"tool": "continue"}).status_code == 403
    client.logout()
    login(client, people["bob"])
    client.post("/teams/payments/grants/", {"tool": "continue", "seats": "2"})
    assert AccessGrant.objects.filter(team=teams["payments"], tool=tools["continue"], state="active").exists()
    grant = AccessGrant.objects.get(tool=tools["aider"])
    client.post(f"/grants/{grant.pk}/revoke/", {"reason": "budget"})
    grant.refresh_from_db()
    assert grant.state == "revoked"


def test_simulator_page(client, people, tools, teams):
    access.grant_create(actor=people["bob"], team=teams["payments"], tool=tools["aider"])
    login(client, people["erin"])
    r = client.post("/authz/simulator/", {"user": "alice", "tool": "aider", "classification": "internal"})
    assert 'alice · Aider: <span class="badge status-approved">allowed' in r.content.decode()
    r = client.post("/authz/simulator/", {"user": "dave", "tool": "aider", "classification": "internal"})
    assert "no_grant" in r.content.decode()
    client.logout()
    login(client, people["alice"])
    assert client.post("/authz/simulator/", {"user": "dave", "tool": "aider"}).status_code == 403


def test_out_of_policy_page_bulk_revoke(client, people, tools, teams):
    from catalog.services.tools import tool_ban

    g = access.grant_create(actor=people["bob"], team=teams["payments"], tool=tools["aider"])
    tool_ban(tool=tools["aider"], actor=people["bob"], reason="leak")
    login(client, people["erin"])
    page = client.get("/out-of-policy/").content.decode()
    assert "tool_banned" in page and "Apply to selected" not in page
    assert client.post("/out-of-policy/", {"action": "revoke", "item": f"grant:{g.pk}"}).status_code == 403
    client.logout()
    login(client, people["frank"])
    asked = client.post("/out-of-policy/", {"action": "revoke", "item": f"grant:{g.pk}", "reason": "banned"})
    assert asked.status_code == 200 and "Yes, revoke 1 item" in asked.content.decode()
    g.refresh_from_db()
    assert g.state == "active"  # nothing changes before the confirmation
    client.post("/out-of-policy/", {"action": "revoke", "item": f"grant:{g.pk}", "reason": "banned", "confirm": "yes"})
    g.refresh_from_db()
    assert g.state == "revoked"
