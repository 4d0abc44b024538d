"""A run's model usage in the API and on the group page: live from the gateway's call rows while the run is in
flight, the stored sums once it has ended, and a clear label when the offline demo model answered."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from catalog.agents.usage_view import DEMO_LABEL
from catalog.models import AgentRun, ModelCall, ToolVersion
from catalog.services import agent_groups, agent_runs
from tests.agent_helpers import change_diff, demo_tool, finish_run, make_repo, register

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(people, teams):
    demo_tool(people, teams)
    ToolVersion.objects.filter(tool__slug="demo-agent").update(review_state="approved")  # versions run once approved
    path = make_repo()
    register(path, people)
    return path


def launch(people, count=2):
    group = agent_groups.agent_group_create(
        actor=people["alice"],
        prompt="Add a greeting",
        repository="sample",
        agents=[{"tool": "demo-agent", "count": count}],
    )
    AgentRun.objects.filter(group=group).update(model="claude-sonnet-4-5")
    return group


def model_call(run, *, model="claude-sonnet-4-5", upstream="demo", inp=0, out=0, cache_read=0, cost="0", refused=""):
    return ModelCall.objects.create(
        run=run,
        team_id=run.group.team_id,
        tool_id=run.tool_id,
        protocol="anthropic-messages",
        model=model,
        upstream=upstream,
        status_code=403 if refused else 200,
        refused=refused,
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=cache_read,
        cost_usd=Decimal(cost),
        request_body=b'{"model": "%s"}' % model.encode(),
        response_body=b'{"content": []}',
    )


def store_sums(run, **fields):
    """What the worker writes on the run when it ends (catalog.gateway.metering.finalize_run_usage)."""
    AgentRun.objects.filter(pk=run.pk).update(**fields)


def test_usage_is_summed_live_while_the_run_is_in_flight(api, people, world):
    group = launch(people)
    first, second = group.runs.order_by("index")
    agent_runs.agent_run_claim(run_id=first.pk, worker="test-worker")
    model_call(first, inp=1200, out=300, cost="0.004500")
    model_call(first, inp=800, out=100, cache_read=50, cost="0.001900")
    model_call(first, model="gpt-5", upstream="", refused="model gpt-5 is not allowed for demo-agent")
    client = api(people["alice"])

    data = client.get(f"/api/v1/agent-runs/{first.pk}/").json()
    assert data["model"] == "claude-sonnet-4-5"
    assert data["usage"] == {
        "model_calls": 2,
        "input_tokens": 2000,
        "output_tokens": 400,
        "cache_read_tokens": 50,
        "cache_write_tokens": 0,
        "cost_usd": "0.006400",
        "models": ["claude-sonnet-4-5"],
        "demo": True,
        "reported": {},
    }
    assert data["gateway_refusal"] == "model gpt-5 is not allowed for demo-agent"

    # the next call shows on the next read
    model_call(first, inp=10, out=5, cost="0.000100")
    assert client.get(f"/api/v1/agent-runs/{first.pk}/").json()["usage"]["cost_usd"] == "0.006500"

    # the group's detail: each run the same as its own endpoint, and the group's sums
    detail = client.get(f"/api/v1/agent-groups/{group.pk}/").json()
    runs = {r["id"]: r for r in detail["runs"]}
    assert runs[first.pk]["usage"] == client.get(f"/api/v1/agent-runs/{first.pk}/").json()["usage"]
    assert runs[second.pk]["usage"]["model_calls"] == 0 and runs[second.pk]["usage"]["demo"] is False
    assert runs[second.pk]["gateway_refusal"] == "" and runs[second.pk]["model"] == "claude-sonnet-4-5"
    assert detail["usage"]["cost_usd"] == "0.006500" and detail["usage"]["model_calls"] == 3
    assert "usage" not in client.get("/api/v1/agent-groups/").json()["results"][0]


def test_usage_comes_from_the_run_once_it_has_ended(api, people, world):
    group = launch(people, count=1)
    run = group.runs.get()
    agent_runs.agent_run_claim(run_id=run.pk, worker="test-worker")
    model_call(run, upstream="api.anthropic.com", inp=1500, out=250, cost="0.008250")
    finish_run(run)
    store_sums(
        run,
        model_calls=1,
        input_tokens=1500,
        output_tokens=250,
        cost_usd=Decimal("0.008250"),
        models_used=["claude-sonnet-4-5"],
        reported_usage={"input_tokens": 1490, "output_tokens": 251, "cost_usd": 0.0082},
    )
    expected = {
        "model_calls": 1,
        "input_tokens": 1500,
        "output_tokens": 250,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": "0.008250",
        "models": ["claude-sonnet-4-5"],
        "demo": False,  # a vendor answered
        "reported": {"input_tokens": 1490, "output_tokens": 251, "cost_usd": 0.0082},
    }
    client = api(people["alice"])
    assert client.get(f"/api/v1/agent-runs/{run.pk}/").json()["usage"] == expected
    # a call row arriving after the end does not change the ended run's figures
    model_call(run, upstream="api.anthropic.com", inp=99999, out=1, cost="1.000000")
    assert client.get(f"/api/v1/agent-runs/{run.pk}/").json()["usage"] == expected
    assert client.get(f"/api/v1/agent-groups/{group.pk}/").json()["runs"][0]["usage"] == expected


def test_an_ended_run_without_stored_sums_is_summed_from_its_calls(api, people, world):
    """The worker died before summing: the spend still shows."""
    group = launch(people, count=1)
    run = group.runs.get()
    agent_runs.agent_run_claim(run_id=run.pk, worker="test-worker")
    model_call(run, inp=100, out=20, cost="0.000600")
    finish_run(run, status="failed")
    store_sums(run, model_calls=0, input_tokens=0, output_tokens=0, cost_usd=0, models_used=[])
    usage = api(people["alice"]).get(f"/api/v1/agent-runs/{run.pk}/").json()["usage"]
    assert (usage["model_calls"], usage["input_tokens"], usage["cost_usd"], usage["demo"]) == (1, 100, "0.000600", True)


def test_results_show_model_tokens_cost_and_the_demo_label(people, world, tmp_path):
    group = launch(people)
    demo_run, vendor_run = group.runs.order_by("index")
    for run, upstream, cost in ((demo_run, "demo", "0.006400"), (vendor_run, "api.anthropic.com", "0.012000")):
        agent_runs.agent_run_claim(run_id=run.pk, worker="test-worker")
        model_call(run, upstream=upstream, inp=2000, out=400, cost=cost)
    alice = Client()
    alice.force_login(people["alice"])

    # in flight: the grid shows the live figures, the label and the group's total so far
    grid = alice.get(f"/agents/{group.pk}/grid/").content.decode()
    assert grid.count(DEMO_LABEL) == 1 and "2000 tokens in / 400 out" in grid and "$0.006400" in grid
    assert '<strong class="group-cost">$0.018400</strong>' in grid

    diff = change_diff(world, tmp_path)
    for run, cost in ((demo_run, "0.006400"), (vendor_run, "0.012000")):
        finish_run(run, diff=diff, test_exit_code=0)
        store_sums(
            run,
            model_calls=1,
            input_tokens=2000,
            output_tokens=400,
            cost_usd=Decimal(cost),
            models_used=["claude-sonnet-4-5"],
        )
    results = alice.get(f"/agents/{group.pk}/results/").content.decode()
    demo_card = results.split(f'id="diff-{demo_run.pk}"')[1].split(f'id="diff-{vendor_run.pk}"')[0]
    vendor_card = results.split(f'id="diff-{vendor_run.pk}"')[1]
    assert DEMO_LABEL in demo_card and DEMO_LABEL not in vendor_card
    assert "answers from the offline demo model — no vendor was called" in demo_card
    for card, cost in ((demo_card, "$0.006400"), (vendor_card, "$0.012000")):
        assert "claude-sonnet-4-5" in card and "2000 tokens in / 400 out" in card and cost in card
    page = alice.get(f"/agents/{group.pk}/").content.decode()
    assert '<strong class="group-cost">$0.018400</strong>' in page and "for 2 model calls" in page
