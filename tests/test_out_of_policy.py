"""Out of policy (issue 14): the list shows grants, workspaces and agent runs that use a tool their people may no
longer use; the bulk action is one service for the page and the API, in one transaction, with a reason and (on the
page) a confirmation step; unknown kinds are a 400 with a field error on both."""

from __future__ import annotations

import pytest

from catalog.models import AccessGrant, AgentGroup, AgentRun, AuditEvent, Workspace, WorkspaceBuild
from catalog.services import access
from catalog.services import agent_groups as agent_services
from catalog.services import workspaces as workspace_services
from catalog.services.tools import tool_ban
from tests.agent_helpers import demo_tool, make_repo, register
from tests.factories import PASSWORD
from tests.workspace_helpers import granted_tools, published_template, sample_repository

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(people, teams):
    """alice (payments) has a running workspace with claude-code and a pending agent group of the demo agent;
    both tools are then banned. aider stays fine."""
    tools = granted_tools(people, teams)
    template = published_template()
    sample_repository(people)
    ws = workspace_services.workspace_create(
        actor=people["alice"], name="dev", template=template, parameters={"repository": "sample"},
        tools=["claude-code"],
    )
    # the first build ran: the workspace is running (a leaf state, set as a worker would leave it)
    WorkspaceBuild.objects.filter(workspace=ws).update(status="succeeded")
    Workspace.objects.filter(pk=ws.pk).update(status="running")
    quiet = workspace_services.workspace_create(
        actor=people["alice"], name="quiet", template=template, parameters={"repository": "sample"}, tools=["aider"]
    )
    demo = demo_tool(people, teams)
    register(make_repo(), people, slug="agents-repo", teams=("payments",))
    group = agent_services.agent_group_create(
        actor=people["alice"], prompt="Add a greeting", repository="agents-repo",
        agents=[{"tool": "demo-agent", "count": 2}],
    )
    tool_ban(tool=tools["claude-code"], actor=people["frank"], reason="data leak")
    tool_ban(tool=demo, actor=people["frank"], reason="unsigned build")
    grant = AccessGrant.objects.get(team=teams["payments"], tool=tools["claude-code"])
    return {"tools": tools, "workspace": ws, "quiet": quiet, "group": group, "grant": grant}


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def state(world):
    """What a bulk action could change, to compare before and after a refusal."""
    ws = Workspace.objects.get(pk=world["workspace"].pk)
    return (
        AccessGrant.objects.get(pk=world["grant"].pk).state,
        ws.status,
        WorkspaceBuild.objects.filter(workspace=ws).count(),
        AgentGroup.objects.get(pk=world["group"].pk).status,
        sorted(AgentRun.objects.filter(group=world["group"]).values_list("status", flat=True)),
        AuditEvent.objects.count(),
    )


def test_the_list_shows_workspaces_and_agent_runs_using_a_banned_tool(client, api, people, world):
    rows = api(people["erin"]).get("/api/v1/out-of-policy/").json()["results"]
    kinds = sorted({(r["kind"], r["tool"]) for r in rows})
    assert kinds == [("agent_run", "demo-agent"), ("grant", "claude-code"), ("grant", "demo-agent"),
                     ("workspace", "claude-code")]
    workspace = next(r for r in rows if r["kind"] == "workspace")
    assert workspace["id"] == str(world["workspace"].pk) and workspace["owner"] == "alice"
    assert workspace["actions"] == ["stop"] and workspace["reasons"][0]["code"] == "tool_banned"
    assert workspace["url"] == f"/workspaces/{world['workspace'].pk}/"
    runs = [r for r in rows if r["kind"] == "agent_run"]
    assert sorted(r["id"] for r in runs) == sorted(str(r.pk) for r in world["group"].runs.all())
    assert runs[0]["actions"] == ["cancel"] and runs[0]["url"] == f"/agents/{world['group'].pk}/"
    assert str(world["quiet"].pk) not in {r["id"] for r in rows}  # aider is still allowed
    assert [r["kind"] for r in api(people["erin"]).get("/api/v1/out-of-policy/?kind=workspace").json()["results"]] == [
        "workspace"
    ]
    # dave (search) reads none of payments' objects
    assert api(people["dave"]).get("/api/v1/out-of-policy/").json()["results"] == []
    # the page lists them too, with readable reasons
    page = login(client, people["erin"]).get("/out-of-policy/")
    body = page.content.decode()
    assert page.status_code == 200
    assert "alice/dev (running)" in body and "run #1 of agent group" in body and "Tool banned" in body


def test_api_bulk_stops_workspaces_cancels_runs_and_revokes_in_one_audited_action(api, people, world):
    items = [
        {"kind": "workspace", "id": str(world["workspace"].pk)},
    ]
    r = api(people["bob"]).post(
        "/api/v1/out-of-policy/bulk/", {"action": "stop", "items": items, "reason": "claude-code banned"},
        format="json",
    )
    assert r.status_code == 200, r.content
    assert r.json()["results"]["workspace"] == {"done": [str(world["workspace"].pk)], "failed": {}}
    ws = Workspace.objects.get(pk=world["workspace"].pk)
    assert ws.status == "stopping" and ws.builds.filter(transition="stop", status="pending").exists()
    runs = [{"kind": "agent_run", "id": str(run.pk)} for run in world["group"].runs.all()]
    r = api(people["bob"]).post(
        "/api/v1/out-of-policy/bulk/", {"action": "cancel", "items": runs, "reason": "demo agent banned"},
        format="json",
    )
    assert r.status_code == 200, r.content
    assert sorted(r.json()["results"]["agent_run"]["done"]) == sorted(i["id"] for i in runs)
    assert AgentGroup.objects.get(pk=world["group"].pk).status == "canceled"
    assert set(AgentRun.objects.filter(group=world["group"]).values_list("status", flat=True)) == {"canceled"}
    bulk = list(AuditEvent.objects.filter(verb="out_of_policy.bulk_applied").order_by("pk"))
    assert [(e.actor_repr, e.payload["action"], e.payload["reason"]) for e in bulk] == [
        ("bob", "stop", "claude-code banned"),
        ("bob", "cancel", "demo agent banned"),
    ]
    assert AuditEvent.objects.filter(verb="workspace.stop_requested", target_id=str(ws.pk)).exists()
    assert AuditEvent.objects.filter(verb="agent_group.canceled", target_id=str(world["group"].pk)).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "revoke", "items": [{"kind": "tool", "id": "1"}], "reason": "x"}, "items"),
        ({"action": "revoke", "items": [{"kind": "grant", "id": "1"}]}, "reason"),
        ({"action": "revoke", "items": [{"kind": "grant", "id": "1"}], "reason": "  "}, "reason"),
        ({"action": "explode", "items": [{"kind": "grant", "id": "1"}], "reason": "x"}, "action"),
        ({"action": "revoke", "items": [{"kind": "workspace", "id": "1"}], "reason": "x"}, "action"),
    ],
)
def test_api_bulk_refusals_are_400_field_errors_and_change_nothing(api, people, world, body, field):
    body = {**body, "items": [{**i, "id": str(world["grant"].pk)} if i["kind"] == "grant" else i for i in body["items"]]}
    before = state(world)
    r = api(people["bob"]).post("/api/v1/out-of-policy/bulk/", body, format="json")
    assert r.status_code == 400, r.content
    assert field in r.json()["errors"]
    assert state(world) == before


def test_api_bulk_with_a_known_and_an_unknown_kind_changes_nothing(api, people, world):
    """The page used to skip unknown kinds silently and act on the rest; both now refuse the whole request."""
    before = state(world)
    body = {
        "action": "revoke",
        "items": [{"kind": "grant", "id": str(world["grant"].pk)}, {"kind": "tool", "id": "1"}],
        "reason": "x",
    }
    r = api(people["bob"]).post("/api/v1/out-of-policy/bulk/", body, format="json")
    assert r.status_code == 400 and "Unknown kind 'tool'" in r.json()["errors"]["items"][0]
    assert state(world) == before


def test_page_bulk_needs_a_reason_known_kinds_and_a_confirmation(client, people, world):
    grant = world["grant"]
    login(client, people["bob"])
    before = state(world)
    # an unknown kind next to a real grant: 400 with the field error, nothing revoked
    r = client.post("/out-of-policy/", {"action": "revoke", "item": [f"grant:{grant.pk}", "tool:1"], "reason": "x"})
    assert r.status_code == 400 and "Unknown kind" in r.content.decode()
    # no reason: 400
    r = client.post("/out-of-policy/", {"action": "revoke", "item": f"grant:{grant.pk}", "reason": ""})
    assert r.status_code == 400 and "Give a reason" in r.content.decode()
    assert state(world) == before
    # a valid request is shown for confirmation first; nothing changes yet
    r = client.post("/out-of-policy/", {"action": "revoke", "item": f"grant:{grant.pk}", "reason": "banned tool"})
    page = r.content.decode()
    assert r.status_code == 200 and "Confirm: revoke 1 item" in page and "banned tool" in page
    assert 'name="confirm" value="yes"' in page
    assert state(world) == before
    # confirmed: revoked, audited with the reason
    r = client.post(
        "/out-of-policy/",
        {"action": "revoke", "item": f"grant:{grant.pk}", "reason": "banned tool", "confirm": "yes"},
        follow=True,
    )
    assert "Revoke: 1 done." in r.content.decode()
    assert AccessGrant.objects.get(pk=grant.pk).state == "revoked"
    event = AuditEvent.objects.get(verb="out_of_policy.bulk_applied")
    assert event.payload["reason"] == "banned tool" and event.payload["results"]["grant"]["done"] == [str(grant.pk)]
    assert AuditEvent.objects.get(verb="grant.revoked", target_id=str(grant.pk)).payload["reason"] == "banned tool"


def test_page_stops_a_workspace_after_confirmation(client, people, world):
    ws = world["workspace"]
    login(client, people["frank"])
    item = f"workspace:{ws.pk}"
    asked = client.post("/out-of-policy/", {"action": "stop", "item": item, "reason": "banned"})
    assert "Confirm: stop 1 item" in asked.content.decode() and "alice/dev" in asked.content.decode()
    assert Workspace.objects.get(pk=ws.pk).status == "running"
    client.post("/out-of-policy/", {"action": "stop", "item": item, "reason": "banned", "confirm": "yes"})
    assert Workspace.objects.get(pk=ws.pk).status == "stopping"


def test_only_platform_engineers_act(client, api, people, world):
    before = state(world)
    body = {"action": "revoke", "items": [{"kind": "grant", "id": str(world["grant"].pk)}], "reason": "x"}
    for name in ("alice", "erin", "carol"):
        assert api(people[name]).post("/api/v1/out-of-policy/bulk/", body, format="json").status_code == 403
    login(client, people["erin"])
    data = {"action": "revoke", "item": f"grant:{world['grant'].pk}", "reason": "x", "confirm": "yes"}
    assert client.post("/out-of-policy/", data).status_code == 403
    assert state(world) == before


def test_a_failing_item_is_reported_and_the_rest_still_happen(api, people, world):
    """One transaction: an item that is no longer out of policy fails alone, the others are applied."""
    access.grant_revoke(grant=world["grant"], actor=people["bob"], reason="earlier")
    other = AccessGrant.objects.get(tool__slug="demo-agent", state="active")
    body = {
        "action": "revoke",
        "items": [{"kind": "grant", "id": str(world["grant"].pk)}, {"kind": "grant", "id": str(other.pk)}],
        "reason": "cleanup",
    }
    r = api(people["bob"]).post("/api/v1/out-of-policy/bulk/", body, format="json")
    assert r.status_code == 200
    assert r.json()["results"]["grant"]["done"] == [str(other.pk)]
    assert list(r.json()["results"]["grant"]["failed"]) == [str(world["grant"].pk)]
