"""Tools inside workspaces (issue 15): a start's tool session puts each approved tool's runtime on PATH in a real
bubblewrap sandbox (several runtimes at once, read-only), points the CLIs at the model gateway with a key of this
start (never a vendor key), and the gateway meters a workspace's calls on the workspace, refuses its key once the
workspace stopped or the key rotated, and refuses a tool that lost its approval on the very next call."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from django.test import Client

from catalog.models import (
    AuditEvent,
    ModelCall,
    ToolVersion,
    UsageEvent,
    Workspace,
    WorkspaceBuild,
)
from catalog.models.gateway import WorkspaceGatewayKey
from catalog.runners.sandbox import SandboxRunner, private_dir, sandbox_root
from catalog.services.tools import tool_ban
from catalog.services.vendor_keys import vendor_api_key_set
from catalog.services.workspace_tools import workspace_gateway_key_revoke, workspace_tool_session
from tests.gateway.conftest import VENDOR_KEY, model_server, upstream, waitress_portal  # noqa: F401 - fixtures
from tests.workspace_helpers import granted_tools, published_template, running_workspace

pytestmark = pytest.mark.django_db
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")

AIDER_RUNTIME = {"kind": "pypi", "package": "aider-chat", "version": "0.86.2"}
CLAUDE_RUNTIME = {"kind": "npm", "package": "@anthropic-ai/claude-code", "version": "2.1.332"}
CHAT = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Say hello"}]}
MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Say hello"}]}


def fake_runtime(tools_dir: Path, slug: str, spec: dict[str, str], command: str) -> Path:
    """A runtime folder laid out as catalog.runtimes installs one (marker last), with one command that prints
    what it sees."""
    folder = tools_dir / slug / spec["version"]
    bin_dir = folder / ("venv/bin" if spec["kind"] == "pypi" else "node_modules/.bin")
    bin_dir.mkdir(parents=True)
    script = bin_dir / command
    script.write_text(f'#!/bin/sh\necho "{command} {spec["version"]} base=$OPENAI_API_BASE$ANTHROPIC_BASE_URL"\n')
    script.chmod(0o755)
    (folder / ".goldpath-runtime.json").write_text(json.dumps(spec))
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755)
    return folder


@pytest.fixture
def home(settings, tmp_path) -> Path:
    """A private (0700) tools folder, as GOLDPATH_HOME is: a root worker's sandbox uid cannot traverse it."""
    os.chmod(tmp_path, 0o700)
    settings.GOLDPATH = {**settings.GOLDPATH, "TOOLS_DIR": str(tmp_path / "tools")}
    return tmp_path


@pytest.fixture
def world(people, teams, home):
    """alice's running workspace with aider (runtime installed), claude-code (runtime installed) and codex-cli
    (built in: no runtime), all approved and granted to payments, with the team's vendor keys set."""
    tools = granted_tools(people, teams)
    from catalog.services import access
    from tests.factories import ToolFactory

    tools["codex-cli"] = ToolFactory(slug="codex-cli", name="Codex", status="approved")
    access.grant_create(actor=people["bob"], team=teams["payments"], tool=tools["codex-cli"])
    specs = {
        "aider": (AIDER_RUNTIME, ["gpt-4.1-mini", "gpt-4.1"], "aider-text"),
        "claude-code": (CLAUDE_RUNTIME, ["claude-sonnet-4-5"], "claude-stream-json"),
        "codex-cli": ({}, ["gpt-5-codex", "gpt-4.1-mini"], "codex-json"),
    }
    versions = {}
    for slug, (runtime, models, usage_format) in specs.items():
        versions[slug] = ToolVersion.objects.create(
            tool=tools[slug],
            version=runtime.get("version", "1.0.0"),
            runtime=runtime,
            model_names=models,
            usage_format=usage_format,
            review_state="approved",
        )
        vendor_api_key_set(team=teams["payments"], tool=tools[slug], actor=people["bob"], env_var="K", value=VENDOR_KEY)
    fake_runtime(home / "tools", "aider", AIDER_RUNTIME, "aider")
    fake_runtime(home / "tools", "claude-code", CLAUDE_RUNTIME, "claude")
    workspace = running_workspace(people, teams, template=published_template(parameters=[]))
    workspace.tools.set([tools["aider"], tools["claude-code"], tools["codex-cli"]])
    build = WorkspaceBuild.objects.create(
        workspace=workspace,
        number=1,
        transition="start",
        status="running",
        template_version=workspace.template_version,
        tools=[{"slug": s, "version": versions[s].version} for s in ("aider", "claude-code", "codex-cli")],
    )
    return {"workspace": workspace, "build": build, "tools": tools, "versions": versions, "people": people}


def post(path: str, key: str, body: dict, *, anthropic: bool = False):
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"} if anthropic else {"Authorization": f"Bearer {key}"}
    response = Client().post(path, data=json.dumps(body), content_type="application/json", headers=headers)
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return response, content


def chat(key: str):
    return post("/gateway/v1/chat/completions", key, CHAT)


# -- the session a start hands the workspace ---------------------------------------------------------------------


def test_session_points_tools_at_the_gateway_with_a_workspace_key_and_no_vendor_key(world, home):
    session = workspace_tool_session(world["workspace"], world["build"])
    key = session["gateway_key"]
    assert key.startswith("gpw_")
    assert VENDOR_KEY not in json.dumps(session)
    # every API-key variable holds the workspace key; the non-secret environment holds none
    assert session["secrets"] == {
        n: key for n in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "CODEX_API_KEY", "GOLDPATH_GATEWAY_TOKEN")
    }
    assert key not in json.dumps(session["env"])
    env = session["env"]
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:3128"
    assert (
        env["OPENAI_BASE_URL"] == env["OPENAI_API_BASE"] == env["AIDER_OPENAI_API_BASE"] == "http://127.0.0.1:3128/v1"
    )
    assert env["AIDER_MODEL"] == "openai/gpt-4.1-mini" and env["ANTHROPIC_MODEL"] == "claude-sonnet-4-5"
    assert session["runtimes"] == {
        "aider": str(home / "tools" / "aider" / "0.86.2"),
        "claude-code": str(home / "tools" / "claude-code" / "2.1.332"),
    }
    assert {t["slug"]: t["runtime"] for t in session["tools"]} == {
        "aider": True,
        "claude-code": True,
        "codex-cli": False,
    }
    assert session["denied"] == []
    # only the hash is stored, and the rotation is audited
    stored = WorkspaceGatewayKey.objects.get(workspace=world["workspace"])
    assert stored.revoked_at is None and key not in stored.token_sha256
    assert AuditEvent.objects.filter(
        verb="workspace.gateway_key_rotated", target_id=str(world["workspace"].pk)
    ).exists()


def test_a_tool_the_policy_denies_now_is_not_set_up(world, people):
    tool_ban(tool=world["tools"]["aider"], actor=people["admin"], reason="leaked prompts")
    session = workspace_tool_session(world["workspace"], world["build"])
    assert "aider" not in session["runtimes"]
    assert [t["slug"] for t in session["tools"]] == ["claude-code", "codex-cli"]
    assert [d["slug"] for d in session["denied"]] == ["aider"]
    assert "AIDER_MODEL" not in session["env"]


# -- the tools in a real sandbox ----------------------------------------------------------------------------------


@pytest.fixture
def work():
    """The workspace checkout lives under the sandbox root (a root worker's sandbox uid must reach it)."""
    path = private_dir(sandbox_root(), "wst-", None)
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@needs_bwrap
def test_each_runtime_is_on_path_read_only_in_a_workspace_sandbox(world, work):
    session = workspace_tool_session(world["workspace"], world["build"])
    lines: list[str] = []
    probe = (
        'echo "path=$PATH"; command -v aider; command -v claude; aider; claude; '
        'echo "key=$OPENAI_API_KEY"; '
        "touch /opt/goldpath/tools/aider/planted 2>/dev/null && echo WROTE || echo read-only; "
        "rm -f /opt/goldpath/tools/claude-code/node_modules/.bin/claude 2>/dev/null; "
        "test -x /opt/goldpath/tools/claude-code/node_modules/.bin/claude && echo intact"
    )
    runner = SandboxRunner(
        ["/bin/sh", "-c", probe],
        work,
        env=session["env"],
        secrets=session["secrets"],
        runtimes=session["runtimes"],
        time_limit=60,
        on_log=lambda stream, text: lines.append(text),
    )
    result = runner.run()
    assert result.status == "succeeded", lines
    path = next(line for line in lines if line.startswith("path="))
    assert path.startswith(
        "path=/opt/goldpath/tools/aider/node_modules/.bin:/opt/goldpath/tools/aider/venv/bin:"
        "/opt/goldpath/tools/claude-code/node_modules/.bin:/opt/goldpath/tools/claude-code/venv/bin:"
    )
    assert "/opt/goldpath/tools/aider/venv/bin/aider" in lines
    assert "/opt/goldpath/tools/claude-code/node_modules/.bin/claude" in lines
    assert "aider 0.86.2 base=http://127.0.0.1:3128/v1http://127.0.0.1:3128" in lines
    assert "key=********" in lines  # the workspace key is there (masked in logs), never a vendor key
    assert "read-only" in lines and "WROTE" not in lines and "intact" in lines
    assert set(result.sandbox["runtimes"]) == {"aider", "claude-code"}
    assert result.sandbox["runtimes"]["aider"]["package"] == "aider-chat"


# -- the gateway with a workspace key ------------------------------------------------------------------------------


def test_a_workspace_call_is_metered_on_the_workspace_and_its_tool(world, upstream):  # noqa: F811
    key = workspace_tool_session(world["workspace"], world["build"])["gateway_key"]
    response, content = chat(key)
    assert response.status_code == 200, content
    call = ModelCall.objects.get()
    assert call.workspace_id == world["workspace"].pk and call.run_id is None
    assert call.tool.slug == "aider"  # gpt-4.1-mini is aider's and codex's: Chat Completions is aider's protocol
    assert call.input_tokens > 0 and call.refused == ""
    event = UsageEvent.objects.get(kind="model_call")
    assert (event.user.username, event.team_slug, event.tool_slug, event.template_slug) == (
        "alice",
        "payments",
        "aider",
        "sandbox",
    )
    assert event.key == f"model_call:{call.pk}"
    # the upstream got the team's vendor key, never the workspace key
    sent = upstream.last()["headers"]
    assert sent["authorization"] == f"Bearer {VENDOR_KEY}" and key not in json.dumps(sent)
    # an Anthropic call is the Claude Code tool's
    response, content = post("/gateway/v1/messages", key, MESSAGES, anthropic=True)
    assert response.status_code == 200, content
    assert ModelCall.objects.filter(workspace=world["workspace"], tool__slug="claude-code").count() == 1


def test_a_rotated_key_is_refused_and_the_new_one_works(world, upstream):  # noqa: F811
    old = workspace_tool_session(world["workspace"], world["build"])["gateway_key"]
    new = workspace_tool_session(world["workspace"], world["build"])["gateway_key"]
    response, content = chat(old)
    assert response.status_code == 401 and b"revoked" in content
    assert chat(new)[0].status_code == 200
    assert WorkspaceGatewayKey.objects.filter(workspace=world["workspace"], revoked_at__isnull=True).count() == 1


def test_a_stopped_workspace_key_is_refused(world, upstream):  # noqa: F811
    key = workspace_tool_session(world["workspace"], world["build"])["gateway_key"]
    Workspace.objects.filter(pk=world["workspace"].pk).update(status="stopped")
    response, content = chat(key)
    assert response.status_code == 401 and response["x-goldpath-gateway"] == "workspace_not_running"
    Workspace.objects.filter(pk=world["workspace"].pk).update(status="running")
    assert workspace_gateway_key_revoke(workspace=world["workspace"]) == 1  # what a stop does
    assert chat(key)[0].status_code == 401
    assert not ModelCall.objects.exists()


def test_a_tool_that_lost_its_approval_is_refused_on_the_next_call(world, upstream, people):  # noqa: F811
    key = workspace_tool_session(world["workspace"], world["build"])["gateway_key"]
    assert chat(key)[0].status_code == 200
    tool_ban(tool=world["tools"]["aider"], actor=people["admin"], reason="leaked prompts")
    response, content = chat(key)
    assert response.status_code == 403 and response["x-goldpath-gateway"] == "policy_denied", content
    refused = ModelCall.objects.exclude(refused="").get()
    assert refused.workspace_id == world["workspace"].pk and refused.tool.slug == "aider"
    assert AuditEvent.objects.filter(verb="gateway.refused", target_id=str(world["workspace"].pk)).exists()
    # a model none of the workspace's tools may use is refused too
    response, _ = post("/gateway/v1/chat/completions", key, {**CHAT, "model": "gpt-9"})
    assert response.status_code == 403 and response["x-goldpath-gateway"] == "model_not_allowed"


def test_a_run_key_and_a_vendor_key_are_not_workspace_keys(world, upstream):  # noqa: F811
    workspace_tool_session(world["workspace"], world["build"])
    assert chat(VENDOR_KEY)[0].status_code == 401
    assert chat("gpw_" + "A" * 43)[0].status_code == 401


CALL_FROM_INSIDE = r"""
import json, os, urllib.request, urllib.error
body = json.dumps({"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Say hello"}]}).encode()
request = urllib.request.Request(
    os.environ["OPENAI_API_BASE"] + "/chat/completions",
    data=body,
    headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "Content-Type": "application/json"},
)
try:
    with urllib.request.urlopen(request, timeout=30) as answer:
        print("status", answer.status)
except urllib.error.HTTPError as err:
    print("status", err.code)
"""


@needs_bwrap
def test_a_tool_inside_the_sandbox_reaches_the_gateway_with_the_workspace_key(
    world,
    work,
    upstream,  # noqa: F811
    waitress_portal,  # noqa: F811
):
    """The whole path: the sandbox's proxy port relays /v1/... to the web tier's gateway, which meters the call on
    the workspace; after a stop, the same program is refused."""
    from catalog.runners.egress import GatewayRoute

    session = workspace_tool_session(world["workspace"], world["build"])

    def call() -> list[str]:
        lines: list[str] = []
        runner = SandboxRunner(
            ["python", "-c", CALL_FROM_INSIDE],
            work,
            env=session["env"],
            secrets=session["secrets"],
            runtimes=session["runtimes"],
            network=[],
            gateway=GatewayRoute.from_url(f"http://127.0.0.1:{waitress_portal}"),
            time_limit=60,
            on_log=lambda stream, text: lines.append(text),
        )
        assert runner.run().status == "succeeded", lines
        return lines

    assert "status 200" in call()
    assert ModelCall.objects.filter(workspace=world["workspace"], tool__slug="aider", refused="").count() == 1
    Workspace.objects.filter(pk=world["workspace"].pk).update(status="stopped")
    assert "status 401" in call()
