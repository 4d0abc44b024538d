"""Budgets hold under calls in flight: a call of a budgeted grant writes its row at admission with a reserved
cost, which its real figures overwrite when it ends; a grant without a budget writes nothing until the end."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.test import Client

from catalog.gateway.budget import reserved_cost
from catalog.gateway.pricing import cost_usd
from catalog.models import AccessGrant, ModelCall
from tests.gateway.test_gateway_calls import CASES, auth_headers, post

pytestmark = pytest.mark.django_db

ANTHROPIC = CASES["anthropic-messages"][1]


def start_stream(token: str, body: dict):
    """A streamed call admitted and forwarded, its answer not read yet (the call is in flight)."""
    raw = json.dumps({**body, "stream": True}).encode()
    response = Client().post(
        CASES["anthropic-messages"][0],
        data=raw,
        content_type="application/json",
        headers=auth_headers("anthropic-messages", token),
    )
    return response, raw


def test_a_call_in_flight_holds_its_reservation_until_its_real_cost_replaces_it(upstream, gw):
    AccessGrant.objects.filter(pk=gw.grant.pk).update(budget_usd=Decimal("50.00"))
    response, raw = start_stream(gw.token, {**ANTHROPIC, "max_tokens": 32000})
    assert response.status_code == 200
    held = ModelCall.objects.get(run=gw.run)
    assert (held.status_code, held.refused, held.model) == (0, "", "claude-sonnet-4-5")
    assert held.cost_usd == reserved_cost("claude-sonnet-4-5", len(raw), {"max_tokens": 32000})
    assert held.cost_usd == cost_usd("claude-sonnet-4-5", input_tokens=len(raw) // 4, output_tokens=32000)
    assert bytes(held.request_body) == raw

    content = b"".join(response.streaming_content)
    call = ModelCall.objects.get(run=gw.run)  # the same row, now with the real figures
    assert call.pk == held.pk and call.status_code == 200 and call.output_tokens > 0
    assert call.cost_usd == cost_usd(call.model, input_tokens=call.input_tokens, output_tokens=call.output_tokens)
    assert bytes(call.response_body) == content and call.created_at == held.created_at


def test_a_reservation_counts_against_the_budget_of_the_next_call(upstream, gw):
    AccessGrant.objects.filter(pk=gw.grant.pk).update(budget_usd=Decimal("0.40"))
    first, _ = start_stream(gw.token, {**ANTHROPIC, "max_tokens": 32000})  # reserves ~$0.48
    assert first.status_code == 200
    response, content, _ = post("anthropic-messages", gw.token, ANTHROPIC)
    assert response.status_code == 429
    assert json.loads(content)["error"]["message"].startswith("monthly budget of $0.40 for claude-code spent")
    b"".join(first.streaming_content)  # the first call ends: its real cost (a fraction of a cent) frees the budget
    assert post("anthropic-messages", gw.token, ANTHROPIC)[0].status_code == 200
    assert ModelCall.objects.filter(run=gw.run, refused="").exclude(status_code=200).count() == 0


def test_without_a_budget_nothing_is_written_before_the_answer(upstream, gw):
    response, _ = start_stream(gw.token, ANTHROPIC)
    assert response.status_code == 200 and not ModelCall.objects.exists()
    b"".join(response.streaming_content)
    assert ModelCall.objects.get(run=gw.run).status_code == 200


def test_the_reserved_output_is_the_requests_cap_within_bounds():
    def output_of(payload: dict) -> Decimal:
        return reserved_cost("claude-sonnet-4-5", 0, payload) / cost_usd("claude-sonnet-4-5", output_tokens=1)

    assert output_of({}) == 4096
    assert output_of({"max_tokens": 100}) == 100
    assert output_of({"max_output_tokens": 10**9}) == 128_000
    assert output_of({"max_completion_tokens": 2000}) == 2000
    assert output_of({"max_tokens": "lots"}) == output_of({"max_tokens": True}) == output_of({"max_tokens": -5}) == 4096
    assert reserved_cost("claude-sonnet-4-5", 4000, {"max_tokens": 1}) == cost_usd(
        "claude-sonnet-4-5", input_tokens=1000, output_tokens=1
    )
