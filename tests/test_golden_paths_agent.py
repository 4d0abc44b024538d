"""The docker and kubernetes golden paths run Goldpath's workspace agent inside the workspace.

Neither Docker nor a cluster runs here: the templates are checked as written (variables, where the agent token
may flow in the HCL, the shipped agent is the real one) and their start script runs for real against a local
listener standing in for the portal."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

import hcl2
import pytest

from catalog.runners import terraform as tf
from catalog.services import templates as template_services
from catalog.workspace_agent import support_files

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "catalog" / "golden_paths"
AGENT = ROOT / "catalog" / "workspace_agent" / "agent.py"
START = ROOT / "catalog" / "workspace_agent" / "start.sh"
TEMPLATES = ("docker-devcontainer", "kubernetes-pod")
# the only places a value derived from goldpath_session (token, gateway key) may reach, per template
SECRET_SINKS = {
    "docker-devcontainer": {("docker_container", "workspace", "env")},
    "kubernetes-pod": {("kubernetes_secret_v1", "session", "data")},
}
PUBLIC_LOCALS = {"agent_url"}  # the link's address: no secret, shown as a plain env var


@pytest.mark.parametrize("slug", TEMPLATES)
def test_session_is_a_sensitive_builtin_and_the_portal_supplies_the_agent(slug, tmp_path):
    params = {p["name"]: p for p in tf.parse_variables(GOLDEN / slug)}
    assert params["goldpath_session"]["sensitive"] and params["goldpath_session"]["type"] == "string"
    assert "goldpath_agent_launch" not in params  # the local supervisor's argv means nothing in a container
    assert "python3" in params["image"]["description"]
    # no template keeps a copy of the agent: every build gets the portal's current one beside the template's files
    files = template_services.read_folder(GOLDEN / slug)  # what publishing stores in the database
    assert "main.tf" in files and "goldpath_workspace_agent.py" not in files
    assert support_files()["goldpath_workspace_agent.py"] == AGENT.read_text()
    assert 'file("${path.module}/goldpath_workspace_agent.py")' in files["main.tf"]


def test_a_build_folder_gets_the_agent_even_over_a_templates_own_file(transactional_db, people, tmp_path):
    from catalog.models import WorkspaceBuild
    from catalog.services import workspaces as ws_services
    from catalog.tasks import provisioning
    from tests.workspace_helpers import published_template, sample_repository

    template = published_template(files={"main.tf": "# x\n", "goldpath_workspace_agent.py": "print('forged')\n"})
    sample_repository(people)
    ws = ws_services.workspace_create(
        actor=people["alice"], name="dev", template=template, parameters={"repository": "sample"}
    )
    folder = provisioning.materialise(WorkspaceBuild.objects.get(workspace=ws), ws)
    assert (folder / "goldpath_workspace_agent.py").read_text() == AGENT.read_text()
    assert (folder / "goldpath_start.sh").read_text() == START.read_text()


def _leaves(node, path=()):
    """(path, text) of every value in python-hcl2's tree, keys unquoted, comments left out."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in ("__comments__", "__is_block__"):
                yield from _leaves(value, (*path, key.strip('"')))
    elif isinstance(node, list):
        for value in node:
            yield from _leaves(value, path)
    else:
        yield path, str(node)


def _secret_locals(module: dict) -> set[str]:
    """Locals derived from goldpath_session (to a fixpoint), but the link's public address."""
    exprs = {k: str(v) for block in module.get("locals", []) for k, v in block.items() if not k.startswith("__")}
    tainted: set[str] = set()
    while True:
        more = {
            name
            for name, expr in exprs.items()
            if name not in tainted | PUBLIC_LOCALS
            and ("var.goldpath_session" in expr or any(re.search(rf"\blocal\.{t}\b", expr) for t in tainted))
        }
        if not more:
            return tainted
        tainted |= more


@pytest.mark.parametrize("slug", TEMPLATES)
def test_the_token_reaches_only_a_secret_or_the_sensitive_env(slug):
    text = (GOLDEN / slug / "main.tf").read_text()
    module = hcl2.loads(text)
    secret = _secret_locals(module)
    assert {"session"} <= secret and not PUBLIC_LOCALS & secret
    # the public address reads the session's agent_url field and nothing else
    url_expr = next(block["agent_url"] for block in module["locals"] if "agent_url" in block)
    assert re.findall(r"local\.session\.(\w+)", url_expr) == ["agent_url"]
    marks = [re.compile(r"var\.goldpath_session\b"), *(re.compile(rf"\blocal\.{name}\b") for name in secret)]
    sinks: set[tuple[str, ...]] = set()
    for block in module["resource"]:
        for rtype, named in block.items():
            for rname, body in named.items():
                for path, value in _leaves(body):
                    if any(m.search(value) for m in marks):
                        sinks.add((rtype.strip('"'), rname.strip('"'), path[0]))
    assert sinks == SECRET_SINKS[slug]
    for block in module.get("output", []) + module.get("provider", []):
        assert not any(m.search(v) for _, v in _leaves(block) for m in marks)
    assert "nonsensitive(" not in text and not re.search(r"sensitive\s*=\s*false", text)


def test_kubernetes_pod_reads_the_secret_and_is_replaced_when_it_changes():
    module = hcl2.loads((GOLDEN / "kubernetes-pod" / "main.tf").read_text())
    pod = next(b['"kubernetes_pod_v1"']['"workspace"'] for b in module["resource"] if '"kubernetes_pod_v1"' in b)
    container = pod["spec"][0]["container"][0]
    assert "kubernetes_secret_v1.session" in container["env_from"][0]["secret_ref"][0]["name"]
    assert [e["name"] for e in container["env"]] == ['"GOLDPATH_AGENT_URL"']
    assert "goldpath_start.sh" in " ".join(container["command"])
    assert "kubernetes_config_map_v1.agent" in pod["spec"][0]["volume"][0]["config_map"][0]["name"]
    assert "kubernetes_secret_v1.session" in str(pod["lifecycle"][0]["replace_triggered_by"])
    assert "annotations" not in pod["metadata"][0]


def test_docker_container_carries_the_agent_and_is_new_on_every_start():
    module = hcl2.loads((GOLDEN / "docker-devcontainer" / "main.tf").read_text())
    box = next(b['"docker_container"']['"workspace"'] for b in module["resource"] if '"docker_container"' in b)
    uploads = {u["file"]: u["content"] for u in box["upload"]}
    assert {k.rsplit("/", 1)[-1].rstrip('"') for k in uploads} == {"goldpath_start.sh", "goldpath_workspace_agent.py"}
    assert all("file(" in v for v in uploads.values())
    assert "goldpath_start.sh" in " ".join(box["command"])
    assert "labels" not in box
    assert "start" in box["count"]  # stop removes it; start makes a new one with the new token in its env


def _accept_handshake(server: socket.socket, timeout: float = 20.0) -> str:
    ready, _, _ = select.select([server], [], [], timeout)
    assert ready, "the agent never dialled out"
    conn, _ = server.accept()
    conn.settimeout(timeout)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
            break
        head += chunk
    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    conn.close()
    return head.decode("latin-1")


def test_start_script_runs_the_agent_which_dials_out_and_the_main_process_forgets_the_token(tmp_path):
    """goldpath_start.sh as a container runs it: the agent dials out with the token; PID-1's stand-in is
    `sleep` and its environment no longer holds the token."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    token = "gpa_" + os.urandom(12).hex()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "GOLDPATH_AGENT_URL": f"ws://127.0.0.1:{port}/api/v1/workspaces/w1/agent/",
        "GOLDPATH_AGENT_TOKEN": token,
        "GOLDPATH_AGENT_FILE": str(AGENT),
    }
    proc = subprocess.Popen(
        ["/bin/sh", str(START)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        head = _accept_handshake(server)
        assert head.startswith("GET /api/v1/workspaces/w1/agent/ HTTP/1.1")
        assert f"Authorization: Bearer {token}" in head.split("\r\n")
        deadline = time.monotonic() + 10
        while Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[0] != b"sleep":
            assert time.monotonic() < deadline, "the start script did not become sleep"
            time.sleep(0.05)
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
        assert token.encode() not in environ and b"GOLDPATH_AGENT_URL" not in environ
        assert proc.poll() is None  # the workspace keeps running while the agent retries
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # our own session: the script (now sleep) and the agent
        proc.wait()
        server.close()
