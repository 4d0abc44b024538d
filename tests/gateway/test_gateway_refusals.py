"""Admission refusals, each in the vendor's own error format so the CLI shows it, recorded (ModelCall with
`refused`, the run's first `gateway_refusal`) and audited; and the two credentials of a run never stand in for
each other."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.test import Client

from catalog.agents import identity
from catalog.models import AccessGrant, AgentRun, AuditEvent, ModelCall, ToolVersion, VendorApiKey
from catalog.services import access
from tests.gateway.conftest import make_run
from tests.gateway.test_gateway_calls import CASES, auth_headers, post

pytestmark = pytest.mark.django_db

ANTHROPIC = CASES["anthropic-messages"][1]
CHAT = CASES["openai-chat"][1]


def anthropic_error(content: bytes) -> tuple[str, str]:
    body = json.loads(content)
    assert body["type"] == "error"
    return body["error"]["type"], body["error"]["message"]


def openai_error(content: bytes) -> dict:
    return json.loads(content)["error"]


def refusal_recorded(run, status: int, reason_start: str) -> ModelCall:
    call = ModelCall.objects.filter(run=run).latest("id")
    assert call.status_code == status and call.refused.startswith(reason_start)
    assert (call.input_tokens, call.output_tokens, call.cost_usd) == (0, 0, 0)
    assert AuditEvent.objects.filter(verb="gateway.refused", target_id=str(run.pk), actor_repr=run.principal).exists()
    return call


@pytest.mark.parametrize(
    "header",
    [{"x-api-key": "gpg_not-a-real-token"}, {"Authorization": "Bearer sk-ant-a-vendor-key"}, {}],
    ids=["unknown", "vendor-key", "none"],
)
def test_unknown_credential_is_401(upstream, gw, header):
    before = len(upstream.requests())
    response = Client().post(
        "/gateway/v1/messages", data=json.dumps(ANTHROPIC), content_type="application/json", headers=header
    )
    assert response.status_code == 401
    assert response["x-should-retry"] == "false"
    kind, message = anthropic_error(response.content)
    assert kind == "authentication_error" and "unknown, expired or revoked" in message
    assert len(upstream.requests()) == before
    assert not ModelCall.objects.exists()


def test_revoked_and_expired_credentials_and_ended_runs_are_401(upstream, gw):
    assert post("openai-chat", gw.token, CHAT)[0].status_code == 200
    identity.token_revoke(gw.run)
    response, content, _ = post("openai-chat", gw.token, CHAT)
    assert response.status_code == 401
    assert openai_error(content)["code"] == "invalid_api_key"

    fresh = identity.gateway_token_issue(gw.run)
    AgentRun.objects.filter(pk=gw.run.pk).update(status="succeeded")
    response, content, _ = post("openai-chat", fresh, CHAT)
    assert response.status_code == 401 and "succeeded" in openai_error(content)["message"]

    AgentRun.objects.filter(pk=gw.run.pk).update(status="running")
    gw.run.identity_tokens.filter(purpose="gateway", revoked_at__isnull=True).update(expires_at="2000-01-01T00:00Z")
    assert post("openai-chat", fresh, CHAT)[0].status_code == 401


def test_model_not_allowed_is_403_recorded_and_sets_the_run_refusal(upstream, gw):
    before = len(upstream.requests())
    response, content, raw = post("anthropic-messages", gw.token, {**ANTHROPIC, "model": "claude-opus-4-1"})
    assert response.status_code == 403
    kind, message = anthropic_error(content)
    assert kind == "permission_error"
    assert message == (
        "model claude-opus-4-1 is not allowed for claude-code@2.0.0; allowed: claude-sonnet-4-5, gpt-5, gpt-5-codex, "
        "gpt-4.1-mini"
    )
    call = refusal_recorded(gw.run, 403, "model claude-opus-4-1 is not allowed")
    assert bytes(call.request_body) == raw and bytes(call.response_body) == content
    assert AgentRun.objects.get(pk=gw.run.pk).gateway_refusal == message
    assert len(upstream.requests()) == before  # never forwarded

    # a dated snapshot of an allowed alias passes; the first refusal reason is kept
    assert (
        post("anthropic-messages", gw.token, {**ANTHROPIC, "model": "claude-sonnet-4-5-20250929"})[0].status_code == 200
    )
    post("openai-chat", gw.token, {**CHAT, "model": "o3"})
    assert AgentRun.objects.get(pk=gw.run.pk).gateway_refusal == message


def test_budget_spent_is_429(upstream, gw):
    AccessGrant.objects.filter(pk=gw.grant.pk).update(budget_usd=Decimal("0.01"))
    assert post("openai-chat", gw.token, CHAT)[0].status_code == 200  # under budget
    ModelCall.objects.create(
        run=gw.run, team=gw.run.group.team, tool=gw.run.tool, protocol="openai-chat", cost_usd=Decimal("0.02")
    )
    response, content, _ = post("openai-chat", gw.token, CHAT)
    assert response.status_code == 429
    error = openai_error(content)
    assert error["type"] == "insufficient_quota" and error["code"] == "insufficient_quota"
    assert error["message"].startswith("monthly budget of $0.01 for claude-code spent")
    refusal_recorded(gw.run, 429, "monthly budget of $0.01")
    response, content, _ = post("anthropic-messages", gw.token, ANTHROPIC)
    assert response.status_code == 429 and anthropic_error(content)[0] == "rate_limit_error"

    # last month's spend does not count
    ModelCall.objects.filter(cost_usd__gt=0).update(created_at="2000-01-15T00:00Z")
    assert post("openai-chat", gw.token, CHAT)[0].status_code == 200


def test_revoked_grant_refuses_the_next_call(upstream, people, gw):
    assert post("anthropic-messages", gw.token, ANTHROPIC)[0].status_code == 200
    access.grant_revoke(grant=gw.grant, actor=people["bob"], reason="incident")
    response, content, _ = post("anthropic-messages", gw.token, ANTHROPIC)
    assert response.status_code == 403
    kind, message = anthropic_error(content)
    assert kind == "permission_error" and message.startswith("the policy denies claude-code")
    refusal_recorded(gw.run, 403, "the policy denies claude-code")


def test_banned_tool_and_unapproved_version_are_403(upstream, gw):
    ToolVersion.objects.filter(pk=gw.version.pk).update(review_state="proposed")
    response, content, _ = post("openai-chat", gw.token, CHAT)
    assert response.status_code == 403
    assert openai_error(content)["message"] == "claude-code@2.0.0 is proposed, not approved; it may not run"
    assert openai_error(content)["type"] == "permission_error"

    gw.run.tool.status = "banned"
    gw.run.tool.save()
    response, content, _ = post("openai-chat", gw.token, CHAT)
    assert response.status_code == 403 and "banned" in openai_error(content)["message"]


def test_no_vendor_key_is_403_unless_the_demo_model_answers(settings, upstream, people, teams):
    gw = make_run(people, teams, vendor_key=False)
    response, content, _ = post("anthropic-messages", gw.token, ANTHROPIC)
    assert response.status_code == 403
    assert anthropic_error(content)[1] == "no vendor API key set for payments/claude-code"
    refusal_recorded(gw.run, 403, "no vendor API key set")
    assert not VendorApiKey.objects.exists()

    settings.GOLDPATH = {**settings.GOLDPATH, "UPSTREAM_ANTHROPIC": "demo"}
    assert post("anthropic-messages", gw.token, ANTHROPIC)[0].status_code == 200


def test_body_too_large_is_413_and_bad_json_400(settings, upstream, gw):
    settings.GOLDPATH = {**settings.GOLDPATH, "GATEWAY_BODY_MAX_BYTES": 1000}
    response, content, _ = post("anthropic-messages", gw.token, {**ANTHROPIC, "padding": "x" * 2000})
    assert response.status_code == 413 and anthropic_error(content)[0] == "request_too_large"
    refusal_recorded(gw.run, 413, "the request body is larger")

    for raw in (b"{not json", b"[1, 2]", b'{"messages": []}'):
        response = Client().post(
            "/gateway/v1/chat/completions",
            data=raw,
            content_type="application/json",
            headers=auth_headers("openai-chat", gw.token),
        )
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert ModelCall.objects.filter(run=gw.run, status_code=400).count() == 3


def test_wrong_method_and_unknown_paths_answer_in_vendor_format(gw):
    response = Client().get("/gateway/v1/messages", headers=auth_headers("anthropic-messages", gw.token))
    assert response.status_code == 405 and response.json()["type"] == "error"
    response = Client().post("/gateway/v1/embeddings", headers=auth_headers("openai-chat", gw.token))
    assert response.status_code == 404 and "error" in response.json()


def test_agent_token_is_refused_by_the_gateway(upstream, gw):
    agent_token = identity.token_issue(gw.run)
    response, content, _ = post("anthropic-messages", agent_token, ANTHROPIC)
    assert response.status_code == 401
    assert identity.run_for_gateway_token(agent_token) is None
    assert identity.run_for_gateway_token(gw.token).pk == gw.run.pk


def test_gateway_token_is_refused_on_the_agent_endpoints(transactional_db, people, teams, tmp_path):
    from catalog.agents.execution import _agent_socket
    from tests.agent_helpers import socket_post

    gw = make_run(people, teams)
    assert identity.run_for_token(gw.token) is None
    server = _agent_socket(gw.run.pk)(tmp_path / "agent.sock")
    server.start()
    try:
        url = f"/api/v1/agent-runs/{gw.run.pk}/progress/"
        status, _ = socket_post(str(server.path), url, {"progress": "halfway"}, token=gw.token)
        assert status == 401
        agent_token = identity.token_issue(gw.run)
        status, _ = socket_post(str(server.path), url, {"progress": "halfway"}, token=agent_token)
        assert status == 200
    finally:
        server.stop()
    assert AgentRun.objects.get(pk=gw.run.pk).progress == "halfway"


@pytest.fixture
def key_refusing_upstream():
    """A vendor that refuses the key, quoting its last characters as OpenAI does."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Refusing(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = self.server.status
            data = json.dumps(
                {"error": {"message": "Incorrect API key provided: sk-vend*****6789.", "code": "invalid_api_key"}}
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    server.daemon_threads = True
    server.status = 401
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status", [401, 403])
def test_the_vendor_refusing_the_key_is_answered_in_the_gateways_words(settings, gw, key_refusing_upstream, status):
    key_refusing_upstream.status = status
    url = f"http://127.0.0.1:{key_refusing_upstream.server_port}"
    settings.GOLDPATH = {**settings.GOLDPATH, "UPSTREAM_OPENAI": url, "UPSTREAM_ANTHROPIC": url}
    response, content, _ = post("openai-chat", gw.token, {**CHAT, "stream": True})
    assert response.status_code == status
    message = openai_error(content)["message"]
    assert message == (
        f"the vendor refused the team's API key for claude-code (HTTP {status}); ask a platform engineer to check it "
        "on /vendor-keys/"
    )
    assert b"6789" not in content
    response, content, _ = post("anthropic-messages", gw.token, ANTHROPIC)
    assert response.status_code == status and anthropic_error(content)[1].startswith("the vendor refused")
    calls = ModelCall.objects.filter(run=gw.run)
    assert [c.status_code for c in calls] == [status, status] and all(c.refused == "" for c in calls)
    assert all(b"6789" not in bytes(c.response_body) for c in calls)


@pytest.mark.parametrize("where", ["admission", "relay"])
def test_an_unexpected_gateway_failure_fails_the_run_and_answers_in_vendor_format(monkeypatch, upstream, gw, where):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(
        "catalog.gateway.admission.decide" if where == "admission" else "catalog.gateway.upstream.forward", broken
    )
    response, content, _ = post("anthropic-messages", gw.token, ANTHROPIC)
    assert response.status_code == 500
    kind, message = anthropic_error(content)
    assert kind == "api_error" and message.startswith("the Goldpath gateway failed on a model call of this run")
    assert AgentRun.objects.get(pk=gw.run.pk).gateway_refusal == message
