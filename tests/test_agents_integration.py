"""Agent runs end to end: real Celery worker, real bubblewrap, real git, the demo agent.

Skipped (naming bubblewrap) where bwrap is not installed.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command

from catalog.models import AgentGroup, AgentIdentityToken, AgentRun, AuditEvent, ProvenanceRecord
from catalog.services.agent_runs import agent_runs_reap
from tests.agent_helpers import demo_tool, git, make_repo, register
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration]


@pytest.fixture
def bwrap():
    from tests.conftest import require_binary

    return require_binary("bwrap", "bubblewrap")


@pytest.fixture
def setup(bwrap, transactional_db, people, teams, tmp_path):
    demo_tool(people, teams)
    path = make_repo()
    register(path, people)
    return path


def launch(api, user, repo, prompt, count=1, **extra):
    body = {"prompt": prompt, "repository": "sample", "agents": [{"tool": "demo-agent", "count": count}], **extra}
    response = api(user).post("/api/v1/agent-groups/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def group_done(gid):
    return AgentGroup.objects.get(pk=gid).status in ("finished", "canceled")


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def log_text(run) -> str:
    return "\n".join(run.log_lines.order_by("seq").values_list("text", flat=True))


def test_fan_out_accept_and_provenance(api, people, setup, celery_worker, capsys):
    repo = setup
    head_before = git(repo, "rev-parse", "HEAD")
    check = ["python3", "-c", "import pathlib,sys; sys.exit(0 if pathlib.Path('GOLDPATH_DEMO.md').exists() else 1)"]
    data = launch(api, people["alice"], repo, "Add a greeting", count=10, test_command=check)
    gid = data["id"]
    assert len(data["runs"]) == 10
    wait_for(lambda: group_done(gid), timeout=90, message="10 runs to finish")
    group = AgentGroup.objects.get(pk=gid)
    runs = list(group.runs.order_by("index"))
    assert group.status == "finished"
    assert [r.status for r in runs] == ["succeeded"] * 10, [(r.status, r.error) for r in runs]
    assert len({r.diff for r in runs}) == 10  # results differ between runs
    for r in runs:
        assert "GOLDPATH_DEMO.md" in r.diff_stat["files"]
        assert r.test_exit_code == 0
        assert r.sandbox["policy_hash"] and r.sandbox["limits_applied"]["time_limit_s"] == group.time_limit_s
        assert r.sandbox["description"]["engine"] == "bubblewrap"
        assert "[demo-agent]" in log_text(r)
        # the agent reported through its own socket, with its own identity
        assert r.progress == f"run {r.index}: editing files" and r.result["files"] == ["GOLDPATH_DEMO.md", "README.md"]
        assert AuditEvent.objects.filter(verb="agent_run.reported", actor_repr=f"agent:{r.pk}").count() == 2
        assert not AgentIdentityToken.objects.filter(run=r, revoked_at__isnull=True).exists()
    assert all(r.workdir and not Path(r.workdir).exists() for r in runs)  # each run's folder is gone
    assert len({r.result["digest"] for r in runs}) == 10
    # the user's checkout is untouched
    assert git(repo, "rev-parse", "HEAD") == head_before and git(repo, "status", "--porcelain") == ""
    assert AuditEvent.objects.filter(verb="tool.used", actor_repr=f"agent:{runs[0].pk}").exists()
    # logs with ?after=N
    logs = api(people["alice"]).get(f"/api/v1/agent-runs/{runs[0].pk}/logs/?after=1").json()
    assert logs["lines"] and logs["lines"][0]["seq"] == 2

    # the group page shows the diffs side by side with their tests and accept buttons
    from django.test import Client

    browser = Client()
    browser.force_login(people["alice"])
    page = browser.get(f"/agents/{gid}/").content.decode()
    assert page.count("Accept this result") == 10 and page.count('id="diff-') == 10 and "passed" in page

    # accept run 3 -> commit with trailers on a new branch
    chosen = runs[2]
    response = api(people["alice"]).post(f"/api/v1/agent-groups/{gid}/accept/", {"run": chosen.pk}, format="json")
    assert response.status_code == 202 and response.json()["accept_status"] == "pending", response.content
    wait_for(lambda: AgentGroup.objects.get(pk=gid).accepted_commit, timeout=30, message="the worker's commit")
    commit, branch = AgentGroup.objects.get(pk=gid).accepted_commit, AgentGroup.objects.get(pk=gid).accepted_branch
    assert branch == f"goldpath/{gid}/{chosen.pk}"
    assert git(repo, "rev-parse", branch) == commit
    assert git(repo, "rev-parse", "HEAD") == head_before  # still the user's branch
    message = git(repo, "log", "-1", "--format=%B", commit)
    for trailer in (
        f"Goldpath-Run: {chosen.pk}",
        f"Goldpath-Prompt-SHA256: {group.prompt_sha256}",
        f"Goldpath-Agent: agent:{chosen.pk}",
        "Goldpath-Tool-Version: demo-agent@1.0.0",
        "Goldpath-Requested-By: alice",
    ):
        assert trailer in message
    assert api(people["alice"]).get(f"/api/v1/agent-groups/{gid}/").json()["accepted_commit"] == commit

    # the manager's adoption report counts these runs and the accepted result
    from django.utils import timezone

    from catalog.reports.rollup import rollup_usage

    rollup_usage()
    today = timezone.localdate().isoformat()
    report = (
        api(people["carol"])
        .get("/api/v1/reports/adoption/", {"from": today, "to": today, "granularity": "day", "team": "payments"})
        .json()
    )
    demo_row = next(r for r in report["rows"] if r["tool"] == "demo-agent")
    assert demo_row["agent_runs"] == 10 and demo_row["agent_acceptance_rate"] == 0.1
    assert demo_row["active_users"] == 1
    assert (
        api(people["alice"]).post(f"/api/v1/agent-groups/{gid}/accept/", {"run": runs[0].pk}, format="json").status_code
        == 409
    )

    # provenance by commit and by line
    by_commit = api(people["erin"]).get(f"/api/v1/provenance/?commit={commit}").json()
    assert by_commit["agent"] == f"agent:{chosen.pk}" and by_commit["requested_by"] == "alice"
    assert by_commit["prompt"] == "Add a greeting" and by_commit["tool"] == {"slug": "demo-agent", "version": "1.0.0"}
    assert by_commit["statement"]["subject"][0]["digest"]["gitCommit"] == commit
    line_count = len((repo / "README.md").read_text().splitlines())
    by_line = api(people["alice"]).get(
        "/api/v1/provenance/", {"repository": "sample", "path": "README.md", "line": line_count + 2, "ref": branch}
    )
    assert by_line.status_code == 200, by_line.content
    assert by_line.json()["commit"] == commit and by_line.json()["blame"]["line"] == line_count + 2
    # a line the agent did not write was not made by an agent
    first = api(people["alice"]).get(
        "/api/v1/provenance/", {"repository": "sample", "path": "README.md", "line": 1, "ref": branch}
    )
    assert first.status_code == 404
    assert api(people["dave"]).get(f"/api/v1/provenance/?commit={commit}").status_code == 404

    # the signature verifies with the public key; the command agrees
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from catalog.agents.provenance import canonical

    key = load_pem_public_key(api().get("/api/v1/provenance/key/").json()["pem"].encode())
    import base64

    key.verify(base64.b64decode(by_commit["signature"]), canonical(by_commit["statement"]))
    call_command("provenance_verify", commit)
    assert "OK" in capsys.readouterr().out
    page = browser.get(f"/provenance/?commit={commit}").content.decode()
    assert "verified" in page and f"agent:{chosen.pk}" in page

    # tampering: a rewritten branch, then an altered record, both fail with a readable message
    git(repo, "branch", "-f", branch, head_before)
    with pytest.raises(SystemExit) as exc:
        call_command("provenance_verify", commit)
    assert exc.value.code != 0
    err = capsys.readouterr().err  # verified from a fresh clone: the commit is gone with the branch
    assert "no longer contains" in err or f"commit {commit[:12]} no longer exists" in err
    git(repo, "branch", "-f", branch, commit)
    record = ProvenanceRecord.objects.get(commit_sha=commit)
    record.statement["predicate"]["requester"] = "mallory"
    record.save()
    with pytest.raises(SystemExit):
        call_command("provenance_verify", commit)
    assert "signature does not match" in capsys.readouterr().err


def test_hang_network_and_cancel(api, people, setup, celery_worker):
    repo = setup
    marker = uuid.uuid4().hex
    hang = launch(api, people["alice"], repo, f"[hang] {marker}-a", time_limit_s=3)
    net = launch(api, people["alice"], repo, "[network] try to phone home")
    wait_for(lambda: group_done(hang["id"]) and group_done(net["id"]), timeout=60, message="hang and network runs")
    timed_out = AgentRun.objects.get(group_id=hang["id"])
    assert timed_out.status == "timed_out", (timed_out.status, timed_out.error)
    assert "time limit" in timed_out.error
    assert 2.5 <= timed_out.duration_s < 20
    assert processes_with(f"{marker}-a") == []
    blocked = AgentRun.objects.get(group_id=net["id"])
    assert blocked.status == "failed"
    text = log_text(blocked)
    assert "egress DENIED: example.com:443" in text
    assert "direct connection to example.com:443 denied" in text
    assert blocked.sandbox["egress"][0] == {**blocked.sandbox["egress"][0], "host": "example.com", "allowed": False}
    finish = AuditEvent.objects.get(verb="agent_run.finished", target_id=str(blocked.pk))
    assert finish.payload["egress_denied"] == ["example.com:443"]

    # cancel: two hanging runs are stopped with their process trees
    group = launch(api, people["alice"], repo, f"[hang] {marker}-c", count=2, time_limit_s=120)
    wait_for(
        lambda: AgentRun.objects.filter(group_id=group["id"], status="running").count() == 2,
        timeout=30,
        message="runs running",
    )
    wait_for(lambda: len(processes_with(f"{marker}-c")) >= 2, timeout=10, message="sandboxes up")
    response = api(people["alice"]).post(f"/api/v1/agent-groups/{group['id']}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    wait_for(
        lambda: set(AgentRun.objects.filter(group_id=group["id"]).values_list("status", flat=True)) == {"canceled"},
        timeout=20,
        message="runs canceled",
    )
    wait_for(lambda: processes_with(f"{marker}-c") == [], timeout=10, message="sandbox processes gone")


def test_worker_killed_mid_run_is_reaped(api, people, setup, celery_worker):
    repo = setup
    marker = uuid.uuid4().hex
    data = launch(api, people["alice"], repo, f"[hang] {marker}", time_limit_s=300)
    run_id = data["runs"][0]["id"]
    wait_for(lambda: AgentRun.objects.get(pk=run_id).status == "running", timeout=30, message="run running")
    wait_for(lambda: processes_with(marker), timeout=10, message="sandbox up")
    copy = Path(AgentRun.objects.get(pk=run_id).workdir)
    assert (copy / "repo").is_dir()
    assert [p.name.startswith("sbx-") for p in copy.iterdir() if p.name != "repo"] == [True]  # sandbox scratch
    celery_worker.kill()
    bound = 3
    wait_for(lambda: processes_with(marker) == [], timeout=10, message="sandbox processes gone with the worker")

    def reaped():
        agent_runs_reap(bound_s=bound)
        return AgentRun.objects.get(pk=run_id).status == "failed"

    import time

    killed_at = time.monotonic()
    wait_for(reaped, timeout=bound + 10, interval=0.5, message="the reaper to fail the run")
    assert time.monotonic() - killed_at <= bound + 5
    run = AgentRun.objects.get(pk=run_id)
    assert "stopped" in run.error and "reaper" in run.error
    assert not copy.exists()
    assert AgentGroup.objects.get(pk=data["id"]).status == "finished"
    assert not AgentIdentityToken.objects.filter(run_id=run_id, revoked_at__isnull=True).exists()
    assert os.path.exists(repo)


def test_vendor_key_never_enters_the_sandbox(api, people, teams, setup, celery_worker):
    """The team's vendor key stays with the gateway: the agent sees only its own run's gateway credential."""
    from catalog.models import AITool, ToolVersion
    from catalog.services.vendor_keys import vendor_api_key_set

    repo = setup
    tool = AITool.objects.get(slug="demo-agent")
    script = (
        "import os, sys; env = dict(os.environ); "
        "print('vendor', env.get('DEMO_API_KEY'), 'gateway', env.get('ANTHROPIC_API_KEY', '')[:4], "
        "env.get('ANTHROPIC_BASE_URL'), sys.argv[1])"
    )
    argv = ["python3", "-c", script, "{prompt}"]
    ToolVersion.objects.create(tool=tool, version="2.0.0-keyprint", launch_command=argv, review_state="approved")
    secret = "sk-live-" + uuid.uuid4().hex
    vendor_api_key_set(team=teams["payments"], tool=tool, actor=people["bob"], env_var="DEMO_API_KEY", value=secret)
    data = launch(api, people["alice"], repo, "print the key")
    wait_for(lambda: group_done(data["id"]), timeout=30, message="run to finish")
    run = AgentRun.objects.get(group_id=data["id"])
    assert run.status == "succeeded", run.error
    text = log_text(run)
    assert "vendor None gateway gpg_ http://127.0.0.1:3128 print the key" in text, text
    assert secret not in text and secret not in run.diff


def test_an_address_no_longer_allowed_is_refused_with_a_fixed_message(api, people, setup, celery_worker):
    """Attack 5 (SSRF): a repository whose address points at the worker's loopback (registered before the rules,
    or DNS moved) is never cloned, and git's or the server's text never comes back."""
    from catalog.models import Repository

    Repository.objects.filter(slug="sample").update(url="https://127.0.0.1:6379/x.git")
    data = launch(api, people["alice"], setup, "Scan the loopback")
    wait_for(lambda: group_done(data["id"]), timeout=30, message="run to finish")
    run = AgentRun.objects.get(group_id=data["id"])
    assert run.status == "failed"
    assert run.error == "The repository's address is not allowed here. (git: refused)"
    assert "6379" not in log_text(run) and "Connection refused" not in log_text(run)
