"""Real agent CLIs end to end: Claude Code, Codex CLI and Aider installed from the registries, run by a real
Celery worker in the bubblewrap sandbox, every model call through Goldpath's model gateway (served by a real
HTTP server: pytest-django's live server) to a local model server process of our own (tests/model_server.py).

What a user would notice: the runs succeed with the file in their diff, tokens and cost appear per run, the
vendor key reached the model server only from the gateway and never the sandbox (not in `env` printed by the
agent's own shell tool, nor by the test command), and refused calls end the run `failed` with the reason.

Skipped (naming what is missing) without bubblewrap or Node.js/npm. `.ci/run` installs the runtimes through
`tools_install` into GOLDPATH_TOOLS_DIR; elsewhere the worker installs them on first use.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from decimal import Decimal
from types import SimpleNamespace

import pytest

from catalog.demo import REAL_AGENTS
from catalog.models import AccessGrant, AgentGroup, AgentRun, ModelCall, ToolVersion
from catalog.services import access
from catalog.services.vendor_keys import vendor_api_key_set
from tests.agent_helpers import make_repo, register
from tests.conftest import ROOT, WorkerProcess, purge_queues, require_binary, wait_for
from tests.factories import ToolFactory

pytestmark = [pytest.mark.integration]

VENDOR_ENV = {"claude-code": "ANTHROPIC_API_KEY", "codex-cli": "OPENAI_API_KEY", "aider": "OPENAI_API_KEY"}
RUN_TIMEOUT = 420  # the first run of a tool may install its runtime from the registry


@pytest.fixture
def model_server(tmp_path):
    log = tmp_path / "model-server.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.model_server", "--port", "0", "--log", str(log), "--slow-delay", "4"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])

    def requests() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", requests=requests)
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def real_agents(transactional_db, people, teams):
    """claude-code, codex-cli and aider as the seed defines them, approved, granted to payments with vendor keys."""
    require_binary("bwrap", "bubblewrap")
    require_binary("npm", "npm (Node.js)")
    keys = {}
    for slug, spec in REAL_AGENTS.items():
        tool = ToolFactory(slug=slug, name=slug, status="approved", risk_tier="low", max_data_classification="internal")
        ToolVersion.objects.create(tool=tool, review_state="approved", **spec)
        access.grant_create(actor=people["bob"], team=teams["payments"], tool=tool)
        keys[slug] = f"sk-vendor-{slug}-{uuid.uuid4().hex}"
        vendor_api_key_set(
            team=teams["payments"], tool=tool, actor=people["bob"], env_var=VENDOR_ENV[slug], value=keys[slug]
        )
    register(make_repo(), people)
    return keys


@pytest.fixture
def gateway_worker(real_agents, live_server, model_server, settings, monkeypatch):
    """The web tier (live server) forwards to the model server; the worker relays its sandboxes' calls there."""
    settings.GOLDPATH = {
        **settings.GOLDPATH,
        "UPSTREAM_ANTHROPIC": model_server.url,
        "UPSTREAM_OPENAI": model_server.url,
    }
    monkeypatch.setenv("GOLDPATH_GATEWAY_URL", live_server.url)
    purge_queues()
    worker = WorkerProcess(concurrency=3).start()
    yield worker
    worker.stop()


def launch(api, user, agents: list[dict], prompt: str, **extra) -> dict:
    body = {"prompt": prompt, "repository": "sample", "agents": agents, **extra}
    response = api(user).post("/api/v1/agent-groups/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def finished(group_id: int) -> list[AgentRun]:
    wait_for(
        lambda: AgentGroup.objects.get(pk=group_id).status in ("finished", "canceled"),
        timeout=RUN_TIMEOUT,
        interval=0.5,
        message="the agent group to finish",
    )
    return list(AgentRun.objects.filter(group_id=group_id).select_related("tool").order_by("index"))


def log_text(run: AgentRun) -> str:
    return "\n".join(run.log_lines.order_by("seq").values_list("text", flat=True))


def test_claude_codex_and_aider_in_one_group_through_the_gateway(
    api, people, real_agents, gateway_worker, model_server
):
    keys = real_agents
    agents = [{"tool": slug, "count": 1} for slug in ("claude-code", "codex-cli", "aider")]
    # a prompt that looks like an option stays the prompt (each launch command ends its options first)
    prompt = "--version [env] Write a short welcome note for the team"
    group = launch(api, people["alice"], agents, prompt, test_command=["env"])
    runs = finished(group["id"])
    assert [r.tool.slug for r in runs] == ["claude-code", "codex-cli", "aider"]
    client = api(people["alice"])
    for run in runs:
        assert run.status == "succeeded", f"{run.tool.slug}: {run.error}\n{log_text(run)[-3000:]}"
        assert "GOLDPATH_DEMO.md" in run.diff_stat["files"], run.tool.slug
        assert "Write a short welcome note for the team" in run.diff
        usage = client.get(f"/api/v1/agent-runs/{run.pk}/").json()["usage"]
        assert usage["model_calls"] >= 1 and usage["input_tokens"] > 0 and usage["output_tokens"] > 0, usage
        assert Decimal(usage["cost_usd"]) > 0 and usage["models"] == [run.model], usage
        assert usage["reported"].get("input_tokens", 0) > 0, (run.tool.slug, usage)
        # the test command's environment holds no credential at all
        assert run.test_exit_code == 0
        assert not any(k in run.test_output for k in keys.values())
        assert "ANTHROPIC_API_KEY" not in run.test_output and "gpg_" not in run.test_output
    calls = [r for r in model_server.requests() if r["method"] == "POST"]
    anthropic = [r for r in calls if r["path"].startswith("/v1/messages")]
    openai = [r for r in calls if r["path"].startswith(("/v1/responses", "/v1/chat/completions"))]
    assert anthropic and openai
    # the vendor key came from the gateway: every upstream call carries the team's key, never the run's credential
    assert {r["headers"].get("x-api-key") for r in anthropic} == {keys["claude-code"]}
    assert {r["headers"].get("authorization") for r in openai} == {
        f"Bearer {keys['codex-cli']}",
        f"Bearer {keys['aider']}",
    }
    assert not any("gpg_" in json.dumps(r["headers"]) for r in calls)
    # the agents' own shell tool printed its environment (the model saw it): no vendor key there
    bodies = "\n".join(r["body"] for r in calls)
    assert "CODEX_API_KEY=" in bodies and "ANTHROPIC_BASE_URL=" in bodies
    assert not any(key in bodies for key in keys.values())
    # phone-home attempts are denied and logged, and do not fail the run
    aider = runs[2]
    denied = {e["host"] for e in aider.sandbox.get("egress", []) if not e["allowed"]}
    assert "raw.githubusercontent.com" in denied
    assert "network attempts denied by policy" in log_text(aider)
    # the results page shows tokens and cost side by side
    page = api(people["alice"]).get(f"/agents/{group['id']}/results/")
    assert page.status_code in (200, 302)


def test_refusals_end_the_run_failed_with_the_reason(api, people, teams, real_agents, gateway_worker, model_server):
    from catalog.services.agent_groups import agent_group_create

    # a pinned model the version does not list: 400 when the group is created, nothing launched
    response = api(people["alice"]).post(
        "/api/v1/agent-groups/",
        {"prompt": "hi", "repository": "sample", "agents": [{"tool": "codex-cli", "model": "gpt-4o", "count": 1}]},
        format="json",
    )
    assert response.status_code == 400 and "gpt-4o" in json.dumps(response.json())
    # a version whose CLI calls a model it does not list: the gateway refuses (403), the run fails with the reason
    codex = ToolVersion.objects.get(tool__slug="codex-cli")
    argv = [("gpt-4o-mini" if part == "{model}" else part) for part in codex.launch_command]
    ToolVersion.objects.create(
        tool=codex.tool,
        version="0.171.1-offlist",
        runtime=codex.runtime,
        launch_command=argv,
        model_names=["gpt-5.5"],
        usage_format="codex-json",
        review_state="approved",
    )
    group = launch(api, people["alice"], [{"tool": "codex-cli", "version": "0.171.1-offlist"}], "write a note")
    (run,) = finished(group["id"])
    assert run.status == "failed" and "gpt-4o-mini" in run.error and "not allowed" in run.error, run.error
    assert not model_server.requests() or all("gpt-4o-mini" not in r["body"] for r in model_server.requests())

    # the team's monthly budget for the tool is spent: 429, the run fails with the reason
    grant = AccessGrant.objects.in_force().get(team=teams["payments"], tool=codex.tool)
    access_grant_budget(grant, "0.01")
    earlier = agent_group_create(
        actor=people["alice"], prompt="earlier", repository="sample", agents=[{"tool": "codex-cli", "count": 1}]
    )
    ModelCall.objects.create(
        run=earlier.runs.get(), team=teams["payments"], tool=codex.tool, protocol="openai-responses",
        model="gpt-5.5", cost_usd=Decimal("0.020000"), status_code=200,
    )  # fmt: skip
    group = launch(api, people["alice"], [{"tool": "codex-cli", "version": codex.version}], "write a note")
    (run,) = finished(group["id"])
    assert run.status == "failed" and "budget" in run.error, run.error

    # the grant is revoked while the run is talking to its model: the next call is refused, the run fails
    before = len(model_server.requests())
    group = launch(api, people["alice"], [{"tool": "claude-code", "count": 1}], "[slow] [env] write a note")
    wait_for(lambda: len(model_server.requests()) > before, timeout=RUN_TIMEOUT, message="the first model call")
    claude_grant = AccessGrant.objects.in_force().get(team=teams["payments"], tool__slug="claude-code")
    access.grant_revoke(grant=claude_grant, actor=people["bob"], reason="Mid-run revocation test.")
    (run,) = finished(group["id"])
    assert run.status == "failed" and "refused" in run.error, run.error
    assert ModelCall.objects.filter(run=run).exclude(refused="").exists()


def access_grant_budget(grant: AccessGrant, amount: str) -> None:
    grant.budget_usd = Decimal(amount)
    grant.save(update_fields=["budget_usd"])


def test_the_test_command_cannot_call_models_with_the_agents_credential(
    api, people, real_agents, gateway_worker, model_server
):
    """A hostile agent leaves its gateway credential in the workspace for the test command (which runs with no
    secret): the credential ended when the agent exited, and the test command has no route to the gateway."""
    claude = ToolVersion.objects.get(tool__slug="claude-code")
    ToolVersion.objects.create(
        tool=claude.tool,
        version="2.1.333-leak",
        launch_command=["sh", "-c", 'echo "$ANTHROPIC_API_KEY" > .credential'],
        model_names=claude.model_names,
        review_state="approved",
    )
    probe = (
        "import http.client, json; token = open('.credential').read().strip(); "
        "c = http.client.HTTPConnection('127.0.0.1', 3128, timeout=10); "
        "c.request('POST', '/v1/messages', json.dumps({'model': 'claude-sonnet-4-5', 'max_tokens': 5, "
        "'messages': [{'role': 'user', 'content': 'hi'}]}), {'x-api-key': token, 'content-type': 'application/json'}); "
        "print('probe status', c.getresponse().status)"
    )
    group = launch(
        api,
        people["alice"],
        [{"tool": "claude-code", "version": "2.1.333-leak"}],
        "leak",
        test_command=["python3", "-c", probe],
    )
    (run,) = finished(group["id"])
    assert run.status == "succeeded", run.error
    assert "probe status 400" in run.test_output, run.test_output
    assert not ModelCall.objects.filter(run=run).exists() and model_server.requests() == []
