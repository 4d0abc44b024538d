"""Gateway test setup: a real model server process as the upstream, and a running agent run with its gateway
credential, its team's vendor key and a granted, approved tool version (made directly in the database)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from catalog.agents import identity
from catalog.models import AgentGroup, AgentRun, ToolVersion
from catalog.services import access
from catalog.services.vendor_keys import vendor_api_key_set
from tests.factories import ToolFactory

ROOT = Path(__file__).resolve().parents[2]
VENDOR_KEY = "sk-vendor-secret-0123456789"
MODELS = ["claude-sonnet-4-5", "gpt-5", "gpt-5-codex", "gpt-4.1-mini"]


@dataclass
class ModelServer:
    url: str
    log: Path
    proc: subprocess.Popen

    def requests(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def last(self) -> dict:
        return self.requests()[-1]


def start_model_server(log: Path) -> ModelServer:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.model_server", "--port", "0", "--log", str(log), "--models", ",".join(MODELS)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = proc.stdout.readline().strip()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"model server did not start: {line}")
    return ModelServer(f"http://127.0.0.1:{int(line.split()[1])}", log, proc)


@pytest.fixture(scope="session")
def model_server(tmp_path_factory):
    server = start_model_server(tmp_path_factory.mktemp("model-server") / "requests.jsonl")
    try:
        yield server
    finally:
        server.proc.terminate()
        server.proc.wait(10)


@pytest.fixture
def upstream(settings, model_server):
    """Both vendors' upstreams point at the model server process."""
    settings.GOLDPATH = {
        **settings.GOLDPATH,
        "UPSTREAM_ANTHROPIC": model_server.url,
        "UPSTREAM_OPENAI": model_server.url,
        "MODEL_PRICES": {},
    }
    return model_server


@dataclass
class Gateway:
    run: AgentRun
    token: str
    grant: object
    version: ToolVersion


def make_run(people, teams, *, slug="claude-code", models=MODELS, status="running", vendor_key=True) -> Gateway:
    tool = ToolFactory(slug=slug, name=slug.title(), status="approved", risk_tier="low")
    version = ToolVersion.objects.create(
        tool=tool,
        version="2.0.0",
        launch_command=["claude", "-p", "{prompt}"],
        model_names=list(models),
        review_state="approved",
    )
    grant = access.grant_create(actor=people["bob"], team=teams["payments"], tool=tool)
    if vendor_key:
        vendor_api_key_set(
            team=teams["payments"], tool=tool, actor=people["bob"], env_var="VENDOR_KEY", value=VENDOR_KEY
        )
    group = AgentGroup.objects.create(
        requester=people["alice"],
        team=teams["payments"],
        prompt="Add a greeting",
        prompt_sha256="0" * 64,
        repository_url="/nowhere",
        agents=[{"tool": slug, "count": 1}],
        time_limit_s=600,
        status="running",
    )
    run = AgentRun.objects.create(group=group, index=1, tool=tool, tool_version=version, status=status)
    return Gateway(run=run, token=identity.gateway_token_issue(run), grant=grant, version=version)


@pytest.fixture
def gw(people, teams) -> Gateway:
    return make_run(people, teams)


@pytest.fixture
def waitress_portal(transactional_db):
    """The portal's WSGI application served by waitress, as `goldpath_run` starts it; yields its port."""
    import threading

    from waitress.server import create_server

    from portal.wsgi import application

    server = create_server(application, host="127.0.0.1", port=0, threads=8)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield server.effective_port
    server.close()
    thread.join(5)
