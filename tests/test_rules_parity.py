"""One rule, one place (issue 14): the page and the API answer the same question the same way, because they call
the same service or selector. Each test asserts what a user sees on both sides."""

from __future__ import annotations

import pytest
from django.urls import reverse

from catalog.models import AITool, AuditEvent, ToolApproval
from catalog.policy import decide
from catalog.services import access, tool_actions
from catalog.services import tools as tool_services
from tests.factories import PASSWORD, ToolFactory
from tests.workspace_helpers import published_template

pytestmark = pytest.mark.django_db


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


# --- a reason is required to approve, pages and API alike ----------------------------------------------


def test_api_approve_without_a_reason_is_a_400_with_a_field_error(api, people, teams):
    tool = ToolFactory(slug="gizmo", status="in_review", proposed_by=people["alice"], owner_team=teams["platform"])
    before = AuditEvent.objects.count()
    for body in ({}, {"reason": ""}, {"reason": "   "}):
        r = api(people["bob"]).post("/api/v1/tools/gizmo/approve/", body, format="json")
        assert r.status_code == 400, r.content
        assert r.json()["errors"]["reason"] == ["Give a reason; it is recorded in the audit log."]
    tool.refresh_from_db()
    assert tool.status == "in_review" and not ToolApproval.objects.exists()
    assert AuditEvent.objects.count() == before
    r = api(people["bob"]).post("/api/v1/tools/gizmo/approve/", {"reason": "DPA signed"}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert AuditEvent.objects.get(verb="tool.approved", target_repr="gizmo").payload["reason"] == "DPA signed"


def test_page_approve_without_a_reason_shows_the_same_rule(client, people, teams):
    tool = ToolFactory(slug="gizmo", name="Gizmo", status="in_review", proposed_by=people["alice"])
    login(client, people["bob"])
    page = client.post("/tools/gizmo/approve/", {"reason": ""}, follow=True).content.decode()
    assert "Give a reason; it is recorded in the audit log." in page
    tool.refresh_from_db()
    assert tool.status == "in_review" and not AuditEvent.objects.filter(target_repr="gizmo").exists()


@pytest.mark.parametrize("action", [a for a in tool_actions.ACTIONS.values() if a.reason_required])
def test_every_action_that_needs_a_reason_refuses_none_on_page_and_api(client, api, people, teams, action):
    state = sorted(action.sources)[0]
    tool = ToolFactory(slug="widget", name="Widget", status=state, proposed_by=people["alice"])
    actor = people["admin"] if action.name == "reinstate" else people["bob"]
    r = api(actor).post(f"/api/v1/tools/widget/{action.name}/", {}, format="json")
    assert r.status_code == 400 and "reason" in r.json()["errors"]
    login(client, actor)
    page = client.post(f"/tools/widget/{action.name}/", {"reason": ""}, follow=True).content.decode()
    assert "Give a reason" in page
    tool.refresh_from_db()
    assert tool.status == state and not AuditEvent.objects.filter(target_repr="widget").exists()


# --- the lifecycle table drives the service, the URLs, the buttons and the API ---------------------------


def test_the_table_is_the_routes_the_buttons_and_the_api_actions(client, api, people, teams):
    ToolFactory(slug="gizmo", name="Gizmo", status="in_review", proposed_by=people["alice"])
    for name in tool_actions.ACTIONS:
        assert reverse("goldpath:tool-action", kwargs={"slug": "gizmo", "action": name}) == f"/tools/gizmo/{name}/"
        assert reverse("goldpath:review-action", kwargs={"slug": "gizmo", "action": name}) == f"/reviews/gizmo/{name}/"
        assert reverse(f"goldpath:api:tool-{name}", kwargs={"slug": "gizmo"}) == f"/api/v1/tools/gizmo/{name}/"
        assert callable(tool_services.SERVICES[name])
    # an action outside the table has no route
    assert client.post("/tools/gizmo/explode/", {"reason": "x"}).status_code in (403, 404)
    assert api(people["bob"]).post("/api/v1/tools/gizmo/explode/", {}, format="json").status_code == 404
    # the buttons bob sees are the table's rows for in_review he may use; the API says the same
    login(client, people["bob"])
    page = client.get("/tools/gizmo/").content.decode()
    expected = [a for a in tool_actions.ACTIONS.values() if "in_review" in a.sources and a.name != "reinstate"]
    for action in expected:
        assert f'formaction="/tools/gizmo/{action.name}/"' in page and f">{action.label}</button>" in page
    assert 'formaction="/tools/gizmo/reinstate/"' not in page
    data = api(people["bob"]).get("/api/v1/tools/gizmo/").json()
    assert data["allowed_actions"] == [a.name for a in tool_actions.ACTIONS.values() if "in_review" in a.sources]
    # every row writes its own verb, in the past tense
    assert all(a.verb.startswith("tool.") and a.verb.endswith("ed") for a in tool_actions.ACTIONS.values())


# --- a team's manager is also its member, pages and API alike --------------------------------------------


def test_api_makes_a_manager_a_member_who_may_use_the_teams_tools(api, people, teams):
    tool = ToolFactory(slug="aider", name="Aider", status="approved")
    access.grant_create(actor=people["bob"], team=teams["search"], tool=tool)
    assert not decide(people["carol"], tool).allowed  # carol manages search but is not (yet) its member
    r = api(people["admin"]).post("/api/v1/teams/search/members/", {"username": "erin", "manager": True}, format="json")
    assert r.status_code == 201, r.content
    erin = next(m for m in r.json() if m["username"] == "erin")
    assert erin["member"] is True and erin["manager"] is True
    rows = api(people["alice"]).get("/api/v1/teams/search/members/").json()["results"]
    assert [(m["member"], m["manager"]) for m in rows if m["username"] == "erin"] == [(True, True)]
    assert teams["search"].members.filter(username="erin").exists()
    assert teams["search"].managers.filter(username="erin").exists()
    assert decide(people["erin"], tool).allowed  # the policy reads the same membership
    event = AuditEvent.objects.get(verb="team.member_added", target_repr="search")
    assert event.payload == {"user": "erin", "member": True, "manager": True}
    user = api(people["alice"]).get("/api/v1/users/erin/").json()
    assert user["teams"] == ["search"] and user["managed_teams"] == ["search"]


def test_page_make_manager_also_makes_a_member(client, people, teams):
    login(client, people["admin"])
    client.post("/teams/search/members/erin/make-manager/")
    page = client.get("/teams/search/").content.decode()
    start = page.index("<tr><td>erin")
    erin_row = page[start : page.index("</tr>", start)]
    assert "manager" in erin_row and "(not a member)" not in erin_row
    assert teams["search"].members.filter(username="erin").exists()
    r = client.post("/teams/search/members/erin/remove/")
    assert r.status_code == 302
    assert not teams["search"].members.filter(username="erin").exists()
    assert not teams["search"].managers.filter(username="erin").exists()
    assert not people["erin"].groups.filter(pk=teams["search"].group_id).exists()
    assert AuditEvent.objects.get(verb="team.member_removed").payload == {"user": "erin", "was_manager": True}


def test_page_and_api_list_the_same_members(client, api, people, teams):
    from catalog.services import teams as team_services

    team_services.team_member_add(team=teams["payments"], actor=people["admin"], user=people["dave"])
    rows = api(people["alice"]).get("/api/v1/teams/payments/members/").json()["results"]
    assert [(m["username"], m["member"], m["manager"]) for m in rows] == [
        ("alice", True, False),
        ("carol", False, True),  # a manager from before the rule (the fixture's data), shown as such
        ("dave", True, False),
    ]
    login(client, people["alice"])
    page = client.get("/teams/payments/").content.decode()
    for name in ("alice", "carol", "dave"):
        assert name in page
    assert api(people["alice"]).get("/api/v1/teams/payments/").json()["member_count"] == 2


# --- the policy simulator resolves golden paths ---------------------------------------------------------


def test_simulator_api_and_page_know_the_golden_paths(client, api, people, teams):
    """No template resolver was registered in production: every template was "Unknown template"."""
    claude = ToolFactory(slug="claude-code", name="Claude Code", status="approved")
    aider = ToolFactory(slug="aider", name="Aider", status="approved")
    access.grant_create(actor=people["bob"], team=teams["payments"], tool=claude)
    access.grant_create(actor=people["bob"], team=teams["payments"], tool=aider)
    published_template("python-service", tools=[claude])
    check = api(people["erin"]).post
    r = check("/api/v1/authz/check/", {"user": "alice", "tool": "claude-code", "template": "python-service"},
              format="json")
    assert r.status_code == 200, r.content
    assert r.json()["allowed"] is True and r.json()["template"] == "python-service"
    r = check("/api/v1/authz/check/", {"user": "alice", "tool": "aider", "template": "python-service"}, format="json")
    assert r.status_code == 200 and r.json()["allowed"] is False
    assert [x["code"] for x in r.json()["reasons"]] == ["template_does_not_offer_tool"]
    r = check("/api/v1/authz/check/", {"user": "alice", "tool": "aider", "template": "nope"}, format="json")
    assert r.status_code == 400 and r.json()["errors"] == {"template": ["No template with this slug."]}
    login(client, people["erin"])
    page = client.post("/authz/simulator/", {"user": "alice", "tool": "aider", "template": "python-service"})
    assert page.status_code == 200
    body = page.content.decode()
    assert "denied" in body and "Not offered by the template" in body and "python-service" in body
    page = client.post("/authz/simulator/", {"user": "alice", "tool": "aider", "template": "nope"})
    assert page.status_code == 400 and "No template with this slug." in page.content.decode()
    assert "python-service" in client.get("/authz/simulator/").content.decode()  # offered in the form


def test_simulator_refuses_the_same_inputs_on_page_and_api(client, api, people, teams):
    ToolFactory(slug="aider", name="Aider", status="approved")
    login(client, people["erin"])
    cases = [
        ({"user": "alice", "tool": "aider", "classification": "top-secret"}, 400, "classification"),
        ({"user": "alice", "tool": "nope"}, 400, "tool"),
        ({"user": "ghost", "tool": "aider"}, 400, "user"),
    ]
    for body, status, field in cases:
        r = api(people["erin"]).post("/api/v1/authz/check/", body, format="json")
        assert r.status_code == status and field in r.json()["errors"], (body, r.content)
        assert client.post("/authz/simulator/", body).status_code == status
    # a developer asking about someone else: 403 on both
    login(client, people["alice"])
    assert api(people["alice"]).post("/api/v1/authz/check/", {"user": "dave", "tool": "aider"}).status_code == 403
    assert client.post("/authz/simulator/", {"user": "dave", "tool": "aider"}).status_code == 403


# --- search, audit filters and CSV, provenance: one selector each ----------------------------------------


def test_catalog_search_finds_the_same_tools_on_page_and_api(client, api, people, teams):
    ToolFactory(slug="claude-code", name="Claude Code", vendor="Anthropic", status="approved")
    ToolFactory(slug="codex", name="Codex CLI", vendor="OpenAI", description="a coding agent", status="approved")
    ToolFactory(slug="aider", name="Aider", vendor="Aider AI", status="approved")
    login(client, people["alice"])
    for q, expected in (("code", ["claude-code", "codex"]), ("coding agent", ["codex"]), ("ANTHROPIC", ["claude-code"])):
        api_slugs = sorted(t["slug"] for t in api(people["alice"]).get("/api/v1/tools/", {"q": q}).json()["results"])
        assert api_slugs == expected
        page = client.get("/", {"q": q}).content.decode()
        shown = sorted(slug for slug in ("claude-code", "codex", "aider") if f"/tools/{slug}/" in page)
        assert shown == expected, q


def test_audit_filters_and_csv_agree_on_page_and_api(client, api, people, teams):
    tool = ToolFactory(slug="gizmo", name="Gizmo", status="in_review", proposed_by=people["alice"])
    tool_services.tool_approve(tool=tool, actor=people["bob"], reason="fine")
    tool_services.tool_update(tool=AITool.objects.get(pk=tool.pk), actor=people["bob"], data={"vendor": "Other"})
    login(client, people["erin"])
    query = {"actor": "bob", "verb": "tool.approved", "since": "2000-01-01"}
    api_csv = b"".join(api(people["erin"]).get("/api/v1/audit-events/", {**query, "format": "csv"}).streaming_content)
    page_csv = b"".join(client.get("/audit/export.csv", query).streaming_content)
    assert api_csv == page_csv and api_csv.decode().count("\n") == 2 and b"tool.approved" in api_csv
    for bad in ({"since": "yesterday"}, {"until": "2026-13-40"}, {"actor": "x" * 151}):
        assert api(people["erin"]).get("/api/v1/audit-events/", bad).status_code == 400
        assert client.get("/audit/", bad).status_code == 400
        assert client.get("/audit/export.csv", bad).status_code == 400
    assert api(people["alice"]).get("/api/v1/audit-events/", query).status_code == 403
    login(client, people["alice"])
    assert client.get("/audit/", query).status_code == 403


def test_provenance_lookup_refuses_the_same_bad_commit_on_page_and_api(client, api, people, teams):
    r = api(people["erin"]).get("/api/v1/provenance/", {"commit": "not-hex!"})
    assert r.status_code == 400 and "commit" in r.json()["errors"]
    login(client, people["erin"])
    page = client.get("/provenance/", {"commit": "not-hex!"}).content.decode()
    assert "Give a hexadecimal commit hash" in page
    assert api(people["erin"]).get("/api/v1/provenance/", {"commit": "abcdef12"}).status_code == 404
    assert "not made by an agent run here" in client.get("/provenance/", {"commit": "abcdef12"}).content.decode()
