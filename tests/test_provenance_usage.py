"""Provenance of an accepted run signs the models it used, its usage and its model-call transcript digest;
verification recomputes the digest from the stored calls, so a call altered afterwards is found. Statements
signed before the gateway still verify."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client

from catalog.agents import crypto
from catalog.agents.provenance import canonical
from catalog.gateway.transcript import run_transcript_sha256
from catalog.models import AgentRun, ModelCall, ProvenanceRecord, ToolVersion
from catalog.services import agent_groups, agent_runs
from tests.agent_helpers import change_diff, demo_tool, finish_run, make_repo, register, worker_accepts

pytestmark = pytest.mark.django_db


@pytest.fixture
def accepted(people, teams, tmp_path):
    """A run that made two model calls through the gateway (the offline demo model), accepted and signed."""
    demo_tool(people, teams)
    ToolVersion.objects.filter(tool__slug="demo-agent").update(review_state="approved")
    repo = make_repo()
    register(repo, people)
    group = agent_groups.agent_group_create(
        actor=people["alice"], prompt="Add a greeting", repository="sample", agents=[{"tool": "demo-agent", "count": 1}]
    )
    run = group.runs.get()
    agent_runs.agent_run_claim(run_id=run.pk, worker="test-worker")
    for i, (inp, out, cost) in enumerate(((1200, 300, "0.004500"), (800, 100, "0.001900"))):
        ModelCall.objects.create(
            run=run,
            team=group.team,
            tool=run.tool,
            protocol="anthropic-messages",
            model="claude-sonnet-4-5",
            upstream="demo",
            status_code=200,
            input_tokens=inp,
            output_tokens=out,
            cost_usd=Decimal(cost),
            request_body=b'{"messages": [%d]}' % i,
            response_body=b'{"content": [{"type": "text", "text": "step %d"}]}' % i,
        )
    finish_run(run, diff=change_diff(repo, tmp_path), test_exit_code=0)
    # the sums the worker stores when a run ends
    AgentRun.objects.filter(pk=run.pk).update(
        model_calls=2,
        input_tokens=2000,
        output_tokens=400,
        cost_usd=Decimal("0.006400"),
        models_used=["claude-sonnet-4-5"],
        transcript_sha256=run_transcript_sha256(run.pk),
    )
    agent_groups.agent_group_accept(group=group, actor=people["alice"], run=run)
    worker_accepts(group)
    return ProvenanceRecord.objects.get(run=run)


def test_the_statement_signs_models_usage_and_the_transcript(accepted, api, people, capsys):
    record = accepted
    predicate = record.statement["predicate"]
    digest = run_transcript_sha256(record.run_id)
    assert len(digest) == 64
    assert predicate["models"] == ["claude-sonnet-4-5"]
    assert predicate["usage"] == {"model_calls": 2, "input_tokens": 2000, "output_tokens": 400, "cost_usd": "0.006400"}
    assert predicate["transcript_sha256"] == digest
    assert crypto.verify(canonical(record.statement), record.signature)

    body = api(people["erin"]).get(f"/api/v1/provenance/?commit={record.commit_sha}").json()
    assert body["models"] == ["claude-sonnet-4-5"] and body["transcript_sha256"] == digest

    call_command("provenance_verify", record.commit_sha)
    out = capsys.readouterr().out
    assert "OK:" in out and "models: claude-sonnet-4-5" in out and f"transcript sha256: {digest}" in out
    assert "model-call transcript matches the signed digest" in out
    assert "2 model calls, 2000 tokens in, 400 out, $0.006400" in out


def test_verify_fails_when_a_model_call_was_altered(accepted, people, capsys):
    record = accepted
    call = ModelCall.objects.filter(run_id=record.run_id).order_by("id").last()
    ModelCall.objects.filter(pk=call.pk).update(response_body=b'{"content": [{"type": "text", "text": "rm -rf"}]}')
    with pytest.raises(SystemExit) as exc:
        call_command("provenance_verify", record.commit_sha)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "model-call transcript" in err and "differs from the signed digest" in err
    assert "does not verify" in err
    # the page says so too
    browser = Client()
    browser.force_login(people["erin"])
    page = browser.get(f"/provenance/?commit={record.commit_sha}").content.decode()
    assert "does not verify" in page and "recorded model calls were altered, added or removed" in page

    # a call removed is found as well
    ModelCall.objects.filter(pk=call.pk).delete()
    with pytest.raises(SystemExit):
        call_command("provenance_verify", record.commit_sha)
    assert "differs from the signed digest" in capsys.readouterr().err


def test_a_statement_signed_before_the_gateway_still_verifies(accepted, capsys):
    record = accepted
    statement = record.statement
    for key in ("models", "usage", "transcript_sha256"):
        statement["predicate"].pop(key)
    ProvenanceRecord.objects.filter(pk=record.pk).update(
        statement=statement, signature=crypto.sign(canonical(statement))
    )
    ModelCall.objects.filter(run_id=record.run_id).update(response_body=b"{}")  # nothing signed to compare with
    call_command("provenance_verify", record.commit_sha)
    out = capsys.readouterr().out
    assert "OK:" in out and "models: not recorded (signed before the model gateway)" in out
