"""Web pages: who sees what, forms show field errors, actions go through services and are audited."""

from __future__ import annotations

import pytest

from catalog.models import AITool, AuditEvent, Team, ToolVersion
from catalog.services import tool_versions
from catalog.services import tools as tool_services
from tests.factories import PASSWORD, ToolFactory

pytestmark = pytest.mark.django_db


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def catalog(teams, people):
    return {
        "aider": ToolFactory(slug="aider", name="Aider", vendor="Aider", kind="cli", status="approved"),
        "cursor": ToolFactory(
            slug="cursor",
            name="Cursor",
            vendor="Anysphere",
            kind="ide",
            status="in_review",
            proposed_by=people["alice"],
        ),
        "gemini": ToolFactory(
            slug="gemini-cli", name="Gemini CLI", vendor="Google", risk_tier="high", proposed_by=people["dave"]
        ),
    }


# --- who may see which page ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/tools/aider/", "/tools/new/", "/reviews/", "/teams/", "/teams/payments/", "/audit/"]
)
def test_anonymous_is_sent_to_sign_in(client, catalog, path):
    r = client.get(path)
    assert r.status_code == 302 and r["Location"].startswith("/login/")


@pytest.mark.parametrize(
    "path,allowed",
    [
        ("/", {"alice", "bob", "carol", "erin", "admin"}),
        ("/tools/aider/", {"alice", "bob", "carol", "erin", "admin"}),
        ("/tools/new/", {"alice", "bob", "carol", "admin"}),
        ("/tools/aider/versions/new/", {"bob", "admin"}),
        ("/reviews/", {"bob", "admin"}),
        ("/teams/", {"alice", "bob", "carol", "erin", "admin"}),
        ("/teams/payments/", {"alice", "bob", "carol", "erin", "admin"}),
        ("/audit/", {"bob", "erin", "admin"}),
        ("/audit/export.csv", {"bob", "erin", "admin"}),
    ],
)
def test_pages_render_for_their_roles_and_are_forbidden_to_others(client, people, catalog, path, allowed):
    for name in ("alice", "bob", "carol", "erin", "admin"):
        login(client, people[name])
        r = client.get(path)
        assert r.status_code == (200 if name in allowed else 403), (name, path, r.status_code)
        client.logout()


def test_nav_shows_links_by_role(client, people):
    page = login(client, people["alice"]).get("/").content.decode()
    assert "Catalog" in page and "Teams" in page and "API docs" in page
    assert "Review queue" not in page and "Audit log" not in page and "Developer" in page
    client.logout()
    page = login(client, people["bob"]).get("/").content.decode()
    assert "Review queue" in page and "Audit log" in page and "Platform engineer" in page
    client.logout()
    page = login(client, people["erin"]).get("/").content.decode()
    assert "Audit log" in page and "Review queue" not in page


# --- catalog ----------------------------------------------------------------------------------


def test_catalog_search_and_filters(client, people, catalog):
    login(client, people["alice"])
    page = client.get("/").content.decode()
    assert "Aider" in page and "Cursor" in page and 'class="badge status-in_review"' in page
    r = client.get("/?q=anysph", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="tool-results")
    body = r.content.decode()
    assert "Cursor" in body and "Aider" not in body and "<nav" not in body  # the fragment only
    body = client.get("/?status=approved").content.decode()
    assert "Aider" in body and "Gemini CLI" not in body
    body = client.get("/?risk_tier=high&kind=agent").content.decode()
    assert "Gemini CLI" in body and "Aider" not in body.split('id="tool-results"')[1]
    body = client.get("/?vendor=Google").content.decode().split('id="tool-results"')[1]
    assert "Gemini CLI" in body and "Cursor" not in body


def test_tool_detail_shows_versions_approvals_history_and_trail(client, people, catalog):
    tool = catalog["gemini"]
    tool_versions.tool_version_add(
        tool=tool, actor=people["bob"], data={"version": "0.9.0", "launch_command": ["gemini", "-p", "{prompt}"]}
    )
    tool_services.tool_request_review(tool=tool, actor=people["dave"])
    tool_services.tool_approve(tool=tool, actor=people["bob"], reason="reviewed the DPA")
    login(client, people["erin"])
    page = client.get("/tools/gemini-cli/").content.decode()
    assert "0.9.0" in page and "gemini -p {prompt}" in page
    assert "Approvals collected:</strong> 1 of 2" in page and "reviewed the DPA" in page
    assert "Decision history" in page and "Audit trail" in page and "tool.approval_recorded" in page
    assert 'name="action"' not in page  # an auditor changes nothing
    client.logout()
    page = login(client, people["alice"]).get("/tools/gemini-cli/").content.decode()
    assert "Decision history" in page and "Audit trail" not in page and 'name="action"' not in page


# --- propose, versions ------------------------------------------------------------------------


def test_propose_form_shows_field_errors_and_creates_nothing(client, people, teams):
    login(client, people["alice"])
    r = client.post("/tools/new/", {"name": "X", "slug": "Bad Slug!", "kind": "robot"})
    assert r.status_code == 400
    page = r.content.decode()
    assert "Please correct the fields" in page and "errorlist" in page
    assert "Select a valid choice. robot is not one of the available choices." in page
    assert "This field is required." in page
    assert not AITool.objects.exists()


def test_propose_and_send_to_review(client, people, teams):
    login(client, people["alice"])
    data = {
        "name": "Zed AI",
        "slug": "zed-ai",
        "vendor": "Zed Industries",
        "kind": "ide",
        "risk_tier": "medium",
        "max_data_classification": "internal",
        "homepage": "https://zed.dev",
    }
    r = client.post("/tools/new/", data)
    assert r.status_code == 302 and r["Location"] == "/tools/zed-ai/"
    tool = AITool.objects.get(slug="zed-ai")
    assert (tool.status, tool.proposed_by, tool.owner_team.slug) == ("proposed", people["alice"], "platform")
    r = client.post("/tools/new/", data)
    assert r.status_code == 400 and "A tool with this slug already exists." in r.content.decode()
    client.post("/tools/zed-ai/request-review/", {"reason": ""})
    tool.refresh_from_db()
    assert tool.status == "in_review"
    assert AuditEvent.objects.filter(verb="tool.review_requested", target_repr="zed-ai", actor_repr="alice").exists()


def test_add_version_form(client, people, catalog):
    login(client, people["bob"])
    r = client.post("/tools/aider/versions/new/", {"version": "1.0", "launch_command": "sh\n-c\necho"})
    assert r.status_code == 400 and "{prompt}" in r.content.decode()
    assert not ToolVersion.objects.exists()
    r = client.post(
        "/tools/aider/versions/new/",
        {"version": "1.0", "launch_command": "aider\n--message\n{prompt}", "model_names": "gpt-5, claude"},
    )
    assert r.status_code == 302
    v = ToolVersion.objects.get()
    assert v.launch_command == ["aider", "--message", "{prompt}"] and v.model_names == ["gpt-5", "claude"]
    client.logout()
    login(client, people["alice"])
    assert (
        client.post("/tools/aider/versions/new/", {"version": "2", "launch_command": "a\n{prompt}"}).status_code == 403
    )
    assert ToolVersion.objects.count() == 1


# --- lifecycle actions ------------------------------------------------------------------------


def test_approve_needs_a_reason_and_writes_an_audit_event(client, people, catalog):
    login(client, people["bob"])
    r = client.post("/tools/cursor/approve/", {"reason": "  "}, follow=True)
    assert "Give a reason" in r.content.decode()
    catalog["cursor"].refresh_from_db()
    assert catalog["cursor"].status == "in_review"
    r = client.post("/tools/cursor/approve/", {"reason": "security review passed"}, follow=True)
    assert "Cursor is now approved." in r.content.decode()
    catalog["cursor"].refresh_from_db()
    assert catalog["cursor"].status == "approved"
    event = AuditEvent.objects.get(verb="tool.approved", target_repr="cursor")
    assert event.actor_repr == "bob" and event.payload["reason"] == "security review passed"


def test_self_approval_is_refused_with_a_clear_message(client, people, teams):
    tool = ToolFactory(slug="mine", name="Mine", status="in_review", proposed_by=people["bob"])
    login(client, people["bob"])
    page = client.get("/tools/mine/").content.decode()
    assert "You proposed this tool" in page
    r = client.post("/tools/mine/approve/", {"reason": "looks fine"}, follow=True)
    assert "You proposed this tool; another platform engineer must approve it." in r.content.decode()
    tool.refresh_from_db()
    assert tool.status == "in_review" and not AuditEvent.objects.filter(verb__startswith="tool.approv").exists()


def test_developer_may_not_approve_and_nothing_changes(client, people, catalog):
    login(client, people["dave"])
    before = AuditEvent.objects.count()
    assert client.post("/tools/cursor/approve/", {"reason": "me too"}).status_code == 403
    assert client.post("/tools/cursor/ban/", {"reason": "x"}).status_code == 403
    catalog["cursor"].refresh_from_db()
    assert catalog["cursor"].status == "in_review" and AuditEvent.objects.count() == before


def test_wrong_state_answers_with_a_message(client, people, catalog):
    login(client, people["bob"])
    r = client.post("/tools/aider/retire/", {"reason": ""}, follow=True)
    assert r.status_code == 200 and "Cannot retire a tool that is approved" in r.content.decode()


def test_ban_and_admin_reinstate(client, people, catalog):
    login(client, people["frank"])
    client.post("/tools/aider/ban/", {"reason": "data leak"})
    catalog["aider"].refresh_from_db()
    assert catalog["aider"].status == "banned"
    assert client.post("/tools/aider/reinstate/", {"reason": "fixed"}).status_code == 403
    client.logout()
    login(client, people["admin"])
    assert "Reinstate" in client.get("/tools/aider/").content.decode()
    client.post("/tools/aider/reinstate/", {"reason": "vendor fixed it"})
    catalog["aider"].refresh_from_db()
    assert catalog["aider"].status == "in_review"
    assert AuditEvent.objects.filter(verb="tool.reinstated", actor_repr="admin").exists()


# --- review queue -----------------------------------------------------------------------------


def test_review_queue_inline_approve_and_reject(client, people, catalog):
    login(client, people["bob"])
    page = client.get("/reviews/").content.decode()
    assert "Cursor" in page and "Gemini CLI" in page and "Aider" not in page
    r = client.post("/reviews/cursor/approve/", {"reason": ""}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and "Give a reason" in r.content.decode()
    r = client.post("/reviews/cursor/approve/", {"reason": "ok for internal data"}, HTTP_HX_REQUEST="true")
    body = r.content.decode()
    assert 'id="review-cursor"' in body and "Cursor is now approved." in body and "status-approved" in body
    r = client.post("/reviews/gemini-cli/reject/", {"reason": "no DPA"})
    assert r.status_code == 302 and r["Location"] == "/reviews/"
    catalog["gemini"].refresh_from_db()
    assert catalog["gemini"].status == "rejected"
    assert AuditEvent.objects.filter(verb="tool.rejected", target_repr="gemini-cli", actor_repr="bob").exists()
    client.logout()
    login(client, people["alice"])
    assert client.post("/reviews/gemini-cli/request-review/", {"reason": "x"}).status_code == 403


def test_high_risk_needs_two_approvers_in_the_queue(client, people, catalog):
    tool_services.tool_request_review(tool=catalog["gemini"], actor=people["dave"])
    login(client, people["bob"])
    r = client.post("/reviews/gemini-cli/approve/", {"reason": "first"}, HTTP_HX_REQUEST="true")
    assert "Approval recorded (1 of 2)" in r.content.decode()
    r = client.post("/reviews/gemini-cli/approve/", {"reason": "again"}, HTTP_HX_REQUEST="true")
    assert "You already approved this tool" in r.content.decode()
    client.logout()
    login(client, people["frank"])
    client.post("/reviews/gemini-cli/approve/", {"reason": "second"}, HTTP_HX_REQUEST="true")
    catalog["gemini"].refresh_from_db()
    assert catalog["gemini"].status == "approved"


# --- teams ------------------------------------------------------------------------------------


def test_teams_read_only_for_non_admins(client, people, teams):
    login(client, people["carol"])
    page = client.get("/teams/payments/").content.decode()
    assert "alice" in page and "Add member" not in page and "Make manager" not in page
    before = AuditEvent.objects.count()
    assert client.post("/teams/payments/members/", {"user": "dave"}).status_code == 403
    assert client.post("/teams/payments/members/alice/remove/").status_code == 403
    assert teams["payments"].members.filter(username="alice").exists()
    assert not teams["payments"].members.filter(username="dave").exists()
    assert AuditEvent.objects.count() == before


def test_admin_manages_members(client, people, teams):
    login(client, people["admin"])
    page = client.get("/teams/payments/").content.decode()
    assert "Add member" in page and "Make manager" in page
    r = client.post("/teams/payments/members/", {"user": "nobody"})
    assert r.status_code == 400 and "Select a valid choice" in r.content.decode()
    client.post("/teams/payments/members/", {"user": "dave", "role": "manager"})
    payments = teams["payments"]
    assert payments.members.filter(username="dave").exists()
    people["dave"].profile.refresh_from_db()
    assert people["dave"].profile.role == "manager"
    client.post("/teams/payments/members/dave/make-manager/")
    assert payments.managers.filter(username="dave").exists()
    client.post("/teams/payments/members/alice/remove/")
    assert not payments.members.filter(username="alice").exists()
    verbs = list(AuditEvent.objects.filter(target_repr="payments").values_list("verb", flat=True))
    assert verbs.count("team.member_added") == 2 and "team.member_removed" in verbs


def test_admin_creates_a_team_from_the_team_list(client, people, teams):
    login(client, people["carol"])
    assert "New team" not in client.get("/teams/").content.decode()
    assert client.post("/teams/new/", {"name": "Data", "slug": "data"}).status_code == 403
    login(client, people["admin"])
    assert "New team" in client.get("/teams/").content.decode()
    bad = client.post("/teams/new/", {"name": "Payments again", "slug": "payments"})
    assert bad.status_code == 400 and "A team with this slug already exists." in bad.content.decode()
    bad = client.post("/teams/new/", {"name": "", "slug": "Not a slug!"})
    assert bad.status_code == 400 and "This field is required." in bad.content.decode()
    response = client.post("/teams/new/", {"name": "Data platform", "slug": "data", "description": "Pipelines"})
    assert response.status_code == 302 and response["Location"] == "/teams/data/"
    team = Team.objects.get(slug="data")
    assert team.name == "Data platform" and team.group.name == "team:data"
    assert AuditEvent.objects.filter(verb="team.created", target_repr="data").count() == 1
    assert "Data platform" in client.get("/teams/data/").content.decode()


# --- audit log --------------------------------------------------------------------------------


def test_audit_page_filters_and_csv(client, people, catalog):
    tool_services.tool_approve(tool=catalog["cursor"], actor=people["bob"], reason="fine")
    tool_services.tool_reject(tool=catalog["gemini"], actor=people["frank"], reason="no")
    login(client, people["erin"])
    page = client.get("/audit/?actor=bob").content.decode()
    assert 'title="tool.approved">approved it<' in page and 'title="tool.rejected"' not in page
    page = client.get("/audit/?verb=tool.&target=gemini-cli").content.decode()
    assert 'title="tool.rejected">rejected it<' in page and 'title="tool.approved"' not in page
    assert client.get("/audit/?since=not-a-date").status_code == 400
    r = client.get("/audit/export.csv?actor=frank")
    assert r["Content-Type"].startswith("text/csv")
    lines = b"".join(r.streaming_content).decode().strip().splitlines()
    assert lines[0].startswith("id,created_at,actor_repr,verb") and len(lines) == 2 and "tool.rejected" in lines[1]
