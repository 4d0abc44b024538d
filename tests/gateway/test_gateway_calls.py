"""Model calls through the gateway to a real model server process: each protocol, streamed and not. The client
gets the upstream's answer; the call is metered (one ModelCall row with the exact bodies, priced), the vendor
key reaches the upstream and the run's credential does not; run totals after finalize_run_usage."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import Client

from catalog.agents.usage_view import run_usage
from catalog.gateway.metering import finalize_run_usage
from catalog.gateway.pricing import cost_usd
from catalog.gateway.transcript import run_transcript_sha256
from catalog.models import AgentRun, ModelCall, UsageEvent
from tests.gateway.conftest import VENDOR_KEY

pytestmark = pytest.mark.django_db

CASES = {
    "anthropic-messages": (
        "/gateway/v1/messages?beta=true",
        {"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": [{"role": "user", "content": "Say hello"}]},
    ),
    "openai-responses": (
        "/gateway/v1/responses",
        {"model": "gpt-5-codex", "input": [{"role": "user", "content": [{"type": "input_text", "text": "Say hello"}]}]},
    ),
    "openai-chat": (
        "/gateway/v1/chat/completions",
        {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Say hello"}]},
    ),
}


def auth_headers(protocol: str, token: str) -> dict[str, str]:
    if protocol.startswith("anthropic"):
        return {"x-api-key": token, "anthropic-version": "2023-06-01"}
    return {"Authorization": f"Bearer {token}"}


def post(protocol: str, token: str, body: dict, *, path: str | None = None):
    raw = json.dumps(body).encode()
    response = Client().post(
        path or CASES[protocol][0], data=raw, content_type="application/json", headers=auth_headers(protocol, token)
    )
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return response, content, raw


def sse_events(content: bytes) -> list[dict]:
    events = []
    for block in content.split(b"\n\n"):
        for line in block.splitlines():
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                events.append(json.loads(line[6:]))
    return events


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("protocol", list(CASES))
def test_each_protocol_is_relayed_and_metered(upstream, gw, protocol, stream):
    path, body = CASES[protocol]
    response, content, raw = post(protocol, gw.token, {**body, "stream": stream})

    assert response.status_code == 200, content
    assert response["x-goldpath-upstream"] == upstream.url.removeprefix("http://")
    if stream:
        assert response["Content-Type"].startswith("text/event-stream")
        events = sse_events(content)
        assert len(events) >= 3
        if protocol == "anthropic-messages":
            assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
        elif protocol == "openai-responses":
            assert events[-1]["type"] == "response.completed"
        else:
            assert content.endswith(b"data: [DONE]\n\n")
    else:
        assert "usage" in json.loads(content)

    call = ModelCall.objects.get(run=gw.run)
    assert (call.protocol, call.model, call.streamed, call.status_code, call.refused) == (
        protocol,
        body["model"],
        stream,
        200,
        "",
    )
    assert call.upstream == upstream.url.removeprefix("http://")
    assert call.input_tokens > 0 and call.output_tokens > 0
    assert call.cost_usd == cost_usd(call.model, input_tokens=call.input_tokens, output_tokens=call.output_tokens)
    assert call.cost_usd > 0
    assert bytes(call.request_body) == raw  # exactly what the CLI sent
    assert bytes(call.response_body) == content  # exactly what the CLI received
    event = UsageEvent.objects.get(kind="model_call", key=f"model_call:{call.pk}")
    assert (event.team_slug, event.tool_slug, event.user_ref) == ("payments", "claude-code", "alice")
    assert (event.input_tokens, event.output_tokens, event.model_cost) == (
        call.input_tokens,
        call.output_tokens,
        call.cost_usd,
    )

    # the upstream saw the team's vendor key and never the run's credential
    seen = upstream.last()
    assert seen["path"] == path.removeprefix("/gateway")
    if protocol.startswith("anthropic"):
        assert seen["headers"]["x-api-key"] == VENDOR_KEY and "authorization" not in seen["headers"]
        assert seen["headers"]["anthropic-version"] == "2023-06-01"
    else:
        assert seen["headers"]["authorization"] == f"Bearer {VENDOR_KEY}" and "x-api-key" not in seen["headers"]
    assert gw.token not in json.dumps(seen)
    assert seen["headers"]["accept-encoding"] == "identity"
    assert "cookie" not in seen["headers"]


def test_run_totals_after_finalize(upstream, gw):
    for protocol in CASES:
        for stream in (False, True):
            path, body = CASES[protocol]
            assert post(protocol, gw.token, {**body, "stream": stream})[0].status_code == 200
    post("anthropic-messages", gw.token, {**CASES["anthropic-messages"][1], "model": "claude-opus-4-1"})  # refused
    calls = ModelCall.objects.filter(run=gw.run, refused="")
    assert calls.count() == 6

    run = finalize_run_usage(gw.run.pk)
    assert run.model_calls == 6
    assert run.input_tokens == sum(c.input_tokens for c in calls)
    assert run.output_tokens == sum(c.output_tokens for c in calls)
    assert run.cost_usd == sum((c.cost_usd for c in calls), Decimal(0))
    assert run.models_used == ["claude-sonnet-4-5", "gpt-4.1-mini", "gpt-5-codex"]
    assert run.transcript_sha256 == run_transcript_sha256(gw.run.pk) and len(run.transcript_sha256) == 64
    assert run.gateway_refusal.startswith("model claude-opus-4-1 is not allowed")

    usage = run_usage(run).as_api()
    assert usage["model_calls"] == 6 and run_usage(run).refusal.startswith("model claude-opus-4-1")
    assert usage["input_tokens"] == run.input_tokens and usage["cost_usd"] == f"{run.cost_usd:.6f}"
    assert usage["models"] == run.models_used and usage["demo"] is False
    assert set(calls.values_list("upstream", flat=True)) == {upstream.url.removeprefix("http://")}
    # finalize is idempotent
    assert finalize_run_usage(gw.run.pk).model_calls == 6


def test_chat_stream_usage_chunk_is_asked_for_and_kept_back(upstream, gw):
    body = {**CASES["openai-chat"][1], "stream": True}
    response, content, _ = post("openai-chat", gw.token, body)
    sent = json.loads(upstream.last()["body"])
    assert sent["stream_options"] == {"include_usage": True}
    chunks = sse_events(content)
    assert all(c["choices"] for c in chunks), "the usage-only chunk the client did not ask for was passed on"
    assert ModelCall.objects.get(run=gw.run).output_tokens > 0

    # a client that asks for it gets it
    response, content, _ = post("openai-chat", gw.token, {**body, "stream_options": {"include_usage": True}})
    assert any(not c["choices"] and c.get("usage") for c in sse_events(content))


def test_models_are_served_by_the_gateway_in_the_asking_vendors_shape(upstream, gw):
    before = len(upstream.requests())
    anthropic = Client().get("/gateway/v1/models", headers={"x-api-key": gw.token, "anthropic-version": "2023-06-01"})
    assert anthropic.status_code == 200
    assert [m["id"] for m in anthropic.json()["data"]] == gw.version.model_names
    assert anthropic.json()["data"][0]["type"] == "model"
    openai = Client().get("/gateway/v1/models", headers={"Authorization": f"Bearer {gw.token}"})
    assert openai.json()["object"] == "list" and [m["id"] for m in openai.json()["data"]] == gw.version.model_names
    assert Client().get("/gateway/v1/models").status_code == 401
    assert len(upstream.requests()) == before  # never forwarded


def test_codex_websocket_probe_falls_back_at_once(gw):
    response = Client().get(
        "/gateway/v1/responses", headers={"Authorization": f"Bearer {gw.token}", "Upgrade": "websocket"}
    )
    assert response.status_code == 426
    assert response.json()["error"]["code"] == "websocket_not_supported"
    assert not ModelCall.objects.exists()


def test_count_tokens_is_forwarded_not_metered(settings, gw):
    settings.GOLDPATH = {**settings.GOLDPATH, "UPSTREAM_ANTHROPIC": "demo"}
    response, content, _ = post(
        "anthropic-messages", gw.token, CASES["anthropic-messages"][1], path="/gateway/v1/messages/count_tokens"
    )
    assert response.status_code == 200 and json.loads(content)["input_tokens"] > 0
    assert not ModelCall.objects.exists()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_demo_upstream_answers_offline_without_a_vendor_key(settings, people, teams, stream):
    from tests.gateway.conftest import make_run

    settings.GOLDPATH = {**settings.GOLDPATH, "UPSTREAM_ANTHROPIC": "demo", "UPSTREAM_OPENAI": "demo"}
    gw = make_run(people, teams, vendor_key=False)
    for protocol, (_path, body) in CASES.items():
        response, content, _ = post(protocol, gw.token, {**body, "stream": stream})
        assert response.status_code == 200, content
        assert response["x-goldpath-upstream"] == "demo"
        assert b"Goldpath demo model" in content
    calls = ModelCall.objects.filter(run=gw.run)
    assert {c.upstream for c in calls} == {"demo"} and all(c.output_tokens > 0 for c in calls)
    assert run_usage(gw.run).demo is True


def test_unreachable_upstream_is_a_502_in_vendor_format(settings, gw):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    settings.GOLDPATH = {**settings.GOLDPATH, "UPSTREAM_ANTHROPIC": f"http://127.0.0.1:{port}"}
    response, content, _ = post("anthropic-messages", gw.token, CASES["anthropic-messages"][1])
    assert response.status_code == 502
    error = json.loads(content)
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert "unreachable" in error["error"]["message"]
    call = ModelCall.objects.get(run=gw.run)
    assert (call.status_code, call.refused, call.input_tokens) == (502, "", 0)
    assert AgentRun.objects.get(pk=gw.run.pk).gateway_refusal == ""  # transient: the CLI may retry


def test_a_call_recorded_after_its_run_ended_is_summed_again(upstream, gw):
    response = Client().post(
        "/gateway/v1/messages",
        data=json.dumps({**CASES["anthropic-messages"][1], "stream": True}),
        content_type="application/json",
        headers=auth_headers("anthropic-messages", gw.token),
    )
    # the worker ends and sums the run while the last call's answer is still going out
    AgentRun.objects.filter(pk=gw.run.pk).update(status="succeeded")
    assert finalize_run_usage(gw.run.pk).model_calls == 0
    b"".join(response.streaming_content)
    run = AgentRun.objects.get(pk=gw.run.pk)
    assert run.model_calls == 1 and run.output_tokens > 0 and run.transcript_sha256


@pytest.mark.parametrize("where", ["upstream", "demo"])
def test_a_stream_closed_before_its_first_chunk_is_still_recorded(settings, upstream, gw, where):
    if where == "demo":
        settings.GOLDPATH = {**settings.GOLDPATH, "UPSTREAM_ANTHROPIC": "demo"}
    response = Client().post(
        "/gateway/v1/messages",
        data=json.dumps({**CASES["anthropic-messages"][1], "stream": True}),
        content_type="application/json",
        headers=auth_headers("anthropic-messages", gw.token),
    )
    # the server gives up on the client before sending anything (as the test client does, without letting
    # request_finished close the test's database connection)
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)
    call = ModelCall.objects.get(run=gw.run)
    assert (call.streamed, call.status_code, bytes(call.response_body)) == (True, 200, b"")
