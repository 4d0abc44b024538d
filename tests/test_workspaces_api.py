"""Workspaces API: validation before anything exists, policy 403, 409 transitions, 429 quotas."""

from __future__ import annotations

import pytest

from catalog.models import AuditEvent, TeamQuota, Workspace, WorkspaceBuild
from tests.workspace_helpers import granted_tools, published_template, sample_repository

pytestmark = pytest.mark.django_db

URL = "/api/v1/workspaces/"


@pytest.fixture
def world(people, teams):
    tools = granted_tools(people, teams)
    template = published_template()
    return {"tools": tools, "template": template, "repository": sample_repository(people)}


def body(**over):
    data = {"name": "dev", "template": "sandbox", "parameters": {"repository": "sample"}, "tools": ["claude-code"]}
    data.update(over)
    return data


def counts():
    return Workspace.objects.count(), WorkspaceBuild.objects.count()


def test_create_answers_201_with_status_and_latest_build(world, people, api):
    r = api(people["alice"]).post(URL, body(tools=["claude-code", "aider"]), format="json")
    assert r.status_code == 201, r.json()
    data = r.json()
    assert data["status"] == "pending"
    assert data["latest_build"]["transition"] == "start"
    assert data["latest_build"]["status"] == "pending"
    assert sorted(data["tools"]) == ["aider", "claude-code"]
    assert data["team"] == "payments"
    assert AuditEvent.objects.filter(verb="workspace.created", target_id=data["id"]).exists()


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"parameters": {}}, "repository"),
        ({"parameters": {"repository": ""}}, "repository"),
        ({"parameters": {"repository": "sample", "memory_mb": "lots"}}, "memory_mb"),
        ({"parameters": {"repository": "sample", "allow_network": "yes"}}, "allow_network"),
        ({"parameters": {"repository": "sample", "nope": 1}}, "nope"),
        ({"parameters": {"repository": "sample", "goldpath_workspace_id": "x"}}, "goldpath_workspace_id"),
    ],
)
def test_invalid_parameters_answer_400_with_field_errors_and_create_nothing(world, people, api, over, field):
    before = counts()
    r = api(people["alice"]).post(URL, body(**over), format="json")
    assert r.status_code == 400, r.json()
    assert field in r.json()["errors"]["parameters"]
    assert counts() == before


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"name": "Bad Name!"}, "name"),
        ({"tools": ["nope"]}, "tools"),
        ({"template": "missing"}, "template"),
        ({"extra": 1}, "extra"),
    ],
)
def test_invalid_fields_answer_400(world, people, api, over, field):
    before = counts()
    r = api(people["alice"]).post(URL, body(**over), format="json")
    assert r.status_code == 400
    assert field in r.json() or field in r.json().get("errors", {})
    assert counts() == before


def test_policy_denial_answers_403_with_reasons_and_creates_nothing(world, people, api):
    before = counts()
    r = api(people["alice"]).post(URL, body(tools=["claude-code", "copilot"]), format="json")
    assert r.status_code == 403
    reasons = r.json()["reasons"]
    assert reasons[0]["tool"] == "copilot"
    assert "no_grant" in [x["code"] for x in reasons[0]["reasons"]]
    assert counts() == before


def test_template_that_does_not_offer_the_tool_is_refused(people, teams, api):
    tools = granted_tools(people, teams)
    sample_repository(people)
    published_template("narrow", tools=[tools["aider"]])
    r = api(people["alice"]).post(URL, body(template="narrow", tools=["claude-code"]), format="json")
    assert r.status_code == 403
    assert "template_does_not_offer_tool" in [x["code"] for x in r.json()["reasons"][0]["reasons"]]


def test_auditor_may_not_create(world, people, api):
    assert api(people["erin"]).post(URL, body(), format="json").status_code == 403
    assert counts() == (0, 0)


def test_transitions_not_allowed_now_answer_409_and_create_nothing(world, people, api):
    client = api(people["alice"])
    ws = client.post(URL, body(), format="json").json()
    before = counts()
    for action in ("start", "stop", "update"):
        r = client.post(f"{URL}{ws['id']}/{action}/", {}, format="json")
        assert r.status_code == 409, (action, r.json())
    assert client.delete(f"{URL}{ws['id']}/").status_code == 409  # its first build is still pending
    assert counts() == before


def test_other_developers_do_not_see_the_workspace(world, people, api):
    ws = api(people["alice"]).post(URL, body(), format="json").json()
    assert api(people["dave"]).get(f"{URL}{ws['id']}/").status_code == 404
    assert api(people["dave"]).post(f"{URL}{ws['id']}/stop/").status_code == 404
    assert api(people["erin"]).get(f"{URL}{ws['id']}/").status_code == 200
    assert api(people["erin"]).post(f"{URL}{ws['id']}/stop/").status_code == 403
    assert api(people["carol"]).get(f"{URL}{ws['id']}/").status_code == 200  # manages payments


def test_workspace_quota_answers_429(world, people, teams, api):
    TeamQuota.objects.create(team=teams["payments"], max_workspaces=1, max_concurrent_builds=10)
    client = api(people["alice"])
    assert client.post(URL, body(), format="json").status_code == 201
    before = counts()
    r = client.post(URL, body(name="second"), format="json")
    assert r.status_code == 429
    assert "quota" in r.json()["detail"]
    assert counts() == before


def test_concurrent_build_quota_answers_429(world, people, teams, api):
    TeamQuota.objects.create(team=teams["payments"], max_workspaces=10, max_concurrent_builds=1)
    client = api(people["alice"])
    assert client.post(URL, body(), format="json").status_code == 201
    r = client.post(URL, body(name="second"), format="json")
    assert r.status_code == 429
    assert "builds" in r.json()["detail"]


def test_cancel_a_pending_build_then_start_again(world, people, api):
    client = api(people["alice"])
    ws = client.post(URL, body(), format="json").json()
    build_id = ws["latest_build"]["id"]
    r = client.post(f"/api/v1/builds/{build_id}/cancel/")
    assert r.status_code == 202
    assert r.json()["status"] == "canceled"
    assert client.post(f"/api/v1/builds/{build_id}/cancel/").status_code == 409
    assert client.get(f"{URL}{ws['id']}/").json()["status"] == "failed"
    r = client.post(f"{URL}{ws['id']}/start/")
    assert r.status_code == 202
    assert r.json()["latest_build"]["number"] == 2
    assert [b["number"] for b in client.get(f"{URL}{ws['id']}/builds/").json()["results"]] == [2, 1]


def test_logs_are_incremental(world, people, api):
    from catalog.services.builds import build_log

    client = api(people["alice"])
    ws = client.post(URL, body(), format="json").json()
    build_id = ws["latest_build"]["id"]
    build_log(build_id, [("init", "info", "one"), ("apply", "info", "two"), ("apply", "error", "three")])
    r = client.get(f"/api/v1/builds/{build_id}/logs/?after=1").json()
    assert [line["text"] for line in r["lines"]] == ["two", "three"]
    assert r["next"] == 3
    assert client.get(f"/api/v1/builds/{build_id}/logs/?after=3").json()["lines"] == []
    assert client.get(f"/api/v1/builds/{build_id}/logs/?after=x").status_code == 400
    assert api(people["dave"]).get(f"/api/v1/builds/{build_id}/logs/").status_code == 404


def test_template_detail_lists_parameters_without_builtins(world, people, api):
    r = api(people["alice"]).get("/api/v1/templates/sandbox/").json()
    names = [p["name"] for p in r["active_version"]["parameters"]]
    assert names == ["repository", "ref", "display_name", "memory_mb", "allow_network"]
    assert r["active_version"]["parameters"][0] == {
        "name": "repository",
        "type": "string",
        "default": None,
        "description": "a registered repository (slug)",
        "sensitive": False,
        "required": True,
    }
