"""Agent runs from the terminal through a real Celery worker, bubblewrap and git with the demo agent: a live
table until all runs finish, accept, logs (and -f), and provenance verified locally, refused when the
statement was altered or another key is trusted."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from catalog.agents import crypto
from catalog.models import AgentGroup, AgentRun, ProvenanceRecord
from tests.agent_helpers import demo_tool, git, make_repo, register
from tests.conftest import require_binary

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sample(people, teams):
    """The demo agent approved and granted to payments; the `sample` repository registered for payments."""
    require_binary("bwrap", "bubblewrap")
    demo_tool(people, teams)
    path = make_repo()
    register(path, people)
    return path


def pem(public) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_run_accept_logs_and_verify_provenance(goldpath, celery_worker, people, sample, tmp_path):
    goldpath.login("alice")
    result = goldpath("agents", "run", "--repo", "sample", "--agent", "demo-agent:2", "Add a greeting", timeout=300)
    assert result.code == 0, result
    group = AgentGroup.objects.get()
    runs = list(group.runs.order_by("index"))
    assert group.status == "finished" and [r.status for r in runs] == ["succeeded", "succeeded"]
    assert f"Agent group {group.pk} on sample: finished (2 succeeded)" in result.out
    for run in runs:
        assert "demo-agent@1.0.0" in result.out and str(run.pk) in result.out
    assert f"\nAccept a result with: goldpath agents accept {group.pk} RUN" in result.out

    chosen = runs[1]
    logs = goldpath("logs", str(chosen.pk))
    assert logs.code == 0, logs
    assert logs.out == "".join(f"{t}\n" for t in chosen.log_lines.order_by("seq").values_list("text", flat=True))
    assert "[demo-agent]" in logs.out
    as_json = goldpath("logs", str(chosen.pk), "--json")
    assert as_json.json["status"] == "succeeded" and len(as_json.json["lines"]) == chosen.log_lines.count()

    accept = goldpath("agents", "accept", str(group.pk), str(chosen.pk), timeout=120)
    assert accept.code == 0, accept
    group.refresh_from_db()
    assert group.accept_status == "done" and group.accepted_run_id == chosen.pk
    commit = group.accepted_commit
    assert f"Accepted run {chosen.pk}: commit {commit} on branch goldpath/{group.pk}/{chosen.pk}" in accept.out
    assert git(sample, "rev-parse", group.accepted_branch) == commit

    verified = goldpath("provenance", "verify", commit)  # the full hash: a prefix never verifies
    assert verified.code == 0, verified
    assert f"Provenance of {commit} verified" in verified.out
    assert "ok   Ed25519 signature valid" in verified.out
    assert "requested by  alice (team payments)" in verified.out
    assert f"agent         agent:{chosen.pk} (group {group.pk}, run {chosen.pk})" in verified.out
    assert "tool          demo-agent@1.0.0" in verified.out
    data = goldpath("provenance", "verify", commit, "--json").json
    assert data["verified"] is True and data["key_id"] == crypto.key_id() and data["problems"] == []

    # a key the user holds: the portal's own verifies; any other key is refused
    mine = tmp_path / "portal.pem"
    mine.write_bytes(pem(crypto.public_key()))
    assert goldpath("provenance", "verify", commit, "--key", str(mine)).code == 0
    foreign = tmp_path / "foreign.pem"
    foreign.write_bytes(pem(Ed25519PrivateKey.generate().public_key()))
    refused = goldpath("provenance", "verify", commit, "--key", str(foreign))
    assert refused.code == 1
    assert "not the trusted key" in refused.err and "signature does not match" in refused.err
    assert f"Provenance of {commit} is NOT verified." in refused.err and "attests" not in refused.out

    # the stored statement altered after signing: refused, whatever the portal says about it
    record = ProvenanceRecord.objects.get(commit_sha=commit)
    record.statement["predicate"]["requester"] = "mallory"
    record.save(update_fields=["statement"])
    tampered = goldpath("provenance", "verify", commit)
    assert tampered.code == 1 and "FAIL the signature does not match the statement" in tampered.err
    assert goldpath("provenance", "verify", commit, "--json").json["verified"] is False

    unknown = goldpath("provenance", "verify", "0123456789ab")
    assert unknown.code == 1 and "No provenance record for commit 0123456789ab" in unknown.err


def test_no_wait_then_follow_the_log_until_the_run_ends(goldpath, celery_worker, people, sample):
    goldpath.login("alice")
    started = goldpath("agents", "run", "-r", "sample", "-a", "demo-agent", "Write docs", "--no-wait", "--json")
    assert started.code == 0, started
    run_id = started.json["runs"][0]["id"]
    followed = goldpath("logs", str(run_id), "-f", timeout=300)
    assert followed.code == 0, followed
    run = AgentRun.objects.get(pk=run_id)
    assert run.status == "succeeded"  # -f returned only once the run had ended, with its whole log
    assert followed.out.count("\n") == run.log_lines.count()


def test_refused_launches_print_the_portals_reasons(goldpath, people, sample):
    goldpath.login("dave")  # search team: the demo agent is granted to payments only
    refused = goldpath("agents", "run", "--repo", "sample", "--agent", "demo-agent", "Hi")
    assert refused.code == 1 and refused.err.startswith("Error: ")
    assert "Traceback" not in refused.err
    bad_count = goldpath("agents", "run", "--repo", "sample", "--agent", "demo-agent:zero", "Hi")
    assert bad_count.code == 2 and "COUNT must be a whole number" in bad_count.err
    assert not AgentGroup.objects.exists()
