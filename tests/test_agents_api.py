"""Agent groups API without a worker: launch (policy first), validation, visibility, cancel, agent identity."""

from __future__ import annotations

import time

import pytest

from catalog.agents import identity
from catalog.models import AgentGroup, AgentRun, AuditEvent
from tests.agent_helpers import demo_tool, make_repo, register
from tests.factories import ToolFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def repo(people):
    path = make_repo()
    register(path, people, teams=("payments", "search"))
    return path


@pytest.fixture
def demo(people, teams):
    return demo_tool(people, teams)


def body(repo, **extra):
    return {
        "prompt": "Add a greeting",
        "repository": "sample",
        "agents": [{"tool": "demo-agent", "count": 3}],
        **extra,
    }


def test_launch_answers_201_with_runs(api, people, demo, repo):
    response = api(people["alice"]).post("/api/v1/agent-groups/", body(repo), format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["status"] == "pending"
    assert [(r["index"], r["tool"], r["status"]) for r in data["runs"]] == [
        (1, "demo-agent", "pending"),
        (2, "demo-agent", "pending"),
        (3, "demo-agent", "pending"),
    ]
    group = AgentGroup.objects.get(pk=data["id"])
    assert group.team.slug == "payments" and len(group.base_commit) == 40
    assert group.decisions["demo-agent"]["allowed"] is True
    assert AuditEvent.objects.filter(verb="agent_group.created", target_id=str(group.pk)).exists()
    # the requester's team reads it; another team's developer does not see it
    assert api(people["dave"]).get(f"/api/v1/agent-groups/{group.pk}/").status_code == 404
    assert api(people["erin"]).get(f"/api/v1/agent-groups/{group.pk}/").status_code == 200
    run = group.runs.first()
    assert api(people["alice"]).get(f"/api/v1/agent-runs/{run.pk}/").json()["identity"] == f"agent:{run.pk}"
    assert api(people["alice"]).get(f"/api/v1/agent-runs/{run.pk}/logs/?after=0").json()["lines"] == []


def test_policy_denies_any_tool_nothing_launched(api, people, teams, demo, repo):
    ToolFactory(slug="not-granted", status="approved")
    from catalog.models import ToolVersion

    ToolVersion.objects.create(
        tool_id=ToolFactory._meta.model.objects.get(slug="not-granted").pk,
        version="1",
        launch_command=["x", "{prompt}"],
        review_state="approved",
    )
    before = (AgentGroup.objects.count(), AgentRun.objects.count(), AuditEvent.objects.count())
    payload = body(repo, agents=[{"tool": "demo-agent", "count": 2}, {"tool": "not-granted", "count": 1}])
    response = api(people["alice"]).post("/api/v1/agent-groups/", payload, format="json")
    assert response.status_code == 403
    data = response.json()
    assert "not-granted" in data["detail"]
    assert [(r["tool"], r["code"]) for r in data["reasons"]] == [("not-granted", "no_grant")]
    assert (AgentGroup.objects.count(), AgentRun.objects.count(), AuditEvent.objects.count()) == before
    # dave's team (search) holds no grant for the demo agent either
    response = api(people["dave"]).post("/api/v1/agent-groups/", body(repo), format="json")
    assert response.status_code == 403 and response.json()["reasons"][0]["code"] == "no_grant"
    # above the tool's clearance
    response = api(people["alice"]).post(
        "/api/v1/agent-groups/", body(repo, classification="restricted"), format="json"
    )
    assert response.status_code == 403
    assert "classification_above_tool" in [r["code"] for r in response.json()["reasons"]]
    assert AgentGroup.objects.count() == before[0]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"agents": [{"tool": "demo-agent", "count": 101}]}, "agents"),
        ({"agents": [{"tool": "demo-agent", "count": 60}, {"tool": "other", "count": 50}]}, "agents"),
        ({"agents": [{"tool": "nope", "count": 1}]}, "agents"),
        ({"agents": []}, "agents"),
        ({"repository": "relative/path"}, "repository"),
        ({"repository": "/etc"}, "repository"),
        ({"base_ref": "no-such-branch"}, "base_ref"),
        ({"base_ref": "--upload-pack=x"}, "base_ref"),
        ({"time_limit_s": 0}, "time_limit_s"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_input_is_400(api, people, demo, repo, change, field):
    response = api(people["alice"]).post("/api/v1/agent-groups/", body(repo, **change), format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()
    assert AgentGroup.objects.count() == 0


def test_up_to_100_runs(api, people, demo, repo):
    response = api(people["alice"]).post(
        "/api/v1/agent-groups/", body(repo, agents=[{"tool": "demo-agent", "count": 100}]), format="json"
    )
    assert response.status_code == 201
    assert len(response.json()["runs"]) == 100


def test_auditor_may_not_launch(api, people, demo, repo):
    assert api(people["erin"]).post("/api/v1/agent-groups/", body(repo), format="json").status_code == 403
    assert AgentGroup.objects.count() == 0


def test_cancel_pending_group(api, people, demo, repo):
    gid = api(people["alice"]).post("/api/v1/agent-groups/", body(repo), format="json").json()["id"]
    assert api(people["dave"]).post(f"/api/v1/agent-groups/{gid}/cancel/").status_code == 404
    assert api(people["carol"]).post(f"/api/v1/agent-groups/{gid}/cancel/").status_code == 403
    assert AgentGroup.objects.get(pk=gid).status == "pending"
    response = api(people["alice"]).post(f"/api/v1/agent-groups/{gid}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    assert {r["status"] for r in response.json()["runs"]} == {"canceled"}
    assert api(people["alice"]).post(f"/api/v1/agent-groups/{gid}/cancel/").status_code == 409


def test_accept_needs_a_succeeded_run(api, people, demo, repo):
    gid = api(people["alice"]).post("/api/v1/agent-groups/", body(repo), format="json").json()["id"]
    run = AgentRun.objects.filter(group_id=gid).first()
    response = api(people["alice"]).post(f"/api/v1/agent-groups/{gid}/accept/", {"run": run.pk}, format="json")
    assert response.status_code == 409
    assert (
        api(people["alice"]).post(f"/api/v1/agent-groups/{gid}/accept/", {"run": 999999}, format="json").status_code
        == 400
    )


def test_agent_token_is_refused_over_http(api, people, demo, repo):
    from rest_framework.test import APIClient

    gid = api(people["alice"]).post("/api/v1/agent-groups/", body(repo), format="json").json()["id"]
    run = AgentRun.objects.filter(group_id=gid).first()
    AgentRun.objects.filter(pk=run.pk).update(status="running")
    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Agent {identity.token_issue(run)}")
    response = agent.post(f"/api/v1/agent-runs/{run.pk}/progress/", {"progress": "halfway"}, format="json")
    assert response.status_code == 401
    assert "only through the run's own socket" in response.json()["detail"]
    assert AgentRun.objects.get(pk=run.pk).progress == ""


def test_agent_identity_only_through_its_own_socket(transactional_db, api, people, demo, repo, tmp_path):
    from catalog.agents.execution import _agent_socket
    from tests.agent_helpers import socket_post

    gid = api(people["alice"]).post("/api/v1/agent-groups/", body(repo), format="json").json()["id"]
    run1, run2 = AgentRun.objects.filter(group_id=gid).order_by("index")[:2]
    AgentRun.objects.filter(pk__in=[run1.pk, run2.pk]).update(status="running")
    token1, token2 = identity.token_issue(run1), identity.token_issue(run2)
    server = _agent_socket(run1.pk)(tmp_path / "agent.sock")
    server.start()
    try:
        sock = str(server.path)
        own = f"/api/v1/agent-runs/{run1.pk}/"
        status, data = socket_post(sock, own + "progress/", {"progress": "halfway"}, token=token1)
        assert status == 200, data
        assert AgentRun.objects.get(pk=run1.pk).progress == "halfway"
        assert socket_post(sock, own + "result/", {"result": {"score": 3}}, token=token1)[0] == 200
        assert AgentRun.objects.get(pk=run1.pk).result == {"score": 3}
        # bad input is a 400 with field errors, not a 500
        status, data = socket_post(sock, own + "result/", {"result": "nope"}, token=token1)
        assert status == 400 and "result" in data
        # another run's endpoints and any other path are not served on this socket
        assert socket_post(sock, f"/api/v1/agent-runs/{run2.pk}/progress/", {"progress": "x"}, token=token1)[0] == 404
        assert socket_post(sock, "/api/v1/agent-groups/", {}, token=token1)[0] == 404
        # a client that sends its body after a pause still reads the refusal (no broken pipe), whether the
        # socket refuses the path or the API refuses the credentials before reading the body
        import socket as socketlib

        def late_body(url: str) -> bytes:
            payload = b'{"progress": "x"}'
            with socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM) as raw:
                raw.settimeout(10)
                raw.connect(sock)
                raw.sendall(
                    f"POST {url} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode()
                )
                time.sleep(0.3)
                raw.sendall(payload)
                return raw.recv(4096).split(b"\r\n", 1)[0]

        assert late_body(f"/api/v1/agent-runs/{run2.pk}/progress/").startswith(b"HTTP/1.0 404")
        assert late_body(own + "progress/")[9:12] in (b"401", b"403")
        # another run's token on this run's socket, a human's token, and no token are refused
        assert socket_post(sock, own + "progress/", {"progress": "x"}, token=token2)[0] == 401
        human = api(people["alice"])
        from rest_framework.authtoken.models import Token

        alice_token = Token.objects.get_or_create(user=people["alice"])[0].key
        assert socket_post(sock, own + "progress/", {"progress": "x"}, header=f"Token {alice_token}")[0] == 403
        assert socket_post(sock, own + "progress/", {"progress": "x"})[0] in (401, 403)
        assert human.post(own + "progress/", {"progress": "x"}, format="json").status_code == 403
        # revoked at the end of the run
        identity.token_revoke(run1)
        assert socket_post(sock, own + "progress/", {"progress": "x"}, token=token1)[0] == 401
        assert AgentRun.objects.get(pk=run1.pk).progress == "halfway"
        assert AgentRun.objects.get(pk=run2.pk).progress == ""
    finally:
        server.stop()
    assert not (tmp_path / "agent.sock").exists()


def test_provenance_key_is_public(api):
    data = api().get("/api/v1/provenance/key/").json()
    assert data["algorithm"] == "ed25519" and "BEGIN PUBLIC KEY" in data["pem"] and len(data["key_id"]) == 64


def test_vendor_api_keys_are_encrypted_and_masked(api, people, teams, demo):
    from catalog.agents import crypto
    from catalog.models import VendorApiKey

    secret = "sk-live-abcdef0123456789"
    body = {"team": "payments", "tool": "demo-agent", "env_var": "DEMO_API_KEY", "value": secret}
    assert api(people["alice"]).post("/api/v1/vendor-keys/", body, format="json").status_code == 403
    response = api(people["bob"]).post("/api/v1/vendor-keys/", body, format="json")
    assert response.status_code == 201
    assert secret not in response.content.decode() and response.json()["value"] == "********6789"
    key = VendorApiKey.objects.get()
    assert secret not in key.ciphertext and crypto.decrypt(key.ciphertext) == secret
    event = AuditEvent.objects.get(verb="vendor_api_key.created")
    assert secret not in str(event.payload)
    listed = api(people["bob"]).get("/api/v1/vendor-keys/").content.decode()
    assert secret not in listed and "DEMO_API_KEY" in listed
    bad = api(people["bob"]).post("/api/v1/vendor-keys/", {**body, "env_var": "PATH"}, format="json")
    assert bad.status_code == 400
