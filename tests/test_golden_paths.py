"""The shipped golden paths: parameters parsed as written; local-sandbox runs for real with Terraform."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from catalog.runners import terraform as tf
from tests.tf.templates import session_values

GOLDEN = Path(__file__).resolve().parent.parent / "catalog" / "golden_paths"
INJECTION = 'x"; rm -rf ~ # $(touch /tmp/goldpath-pwned) ${file("/etc/passwd")} `id`'


def test_parameters_of_every_golden_path():
    local = {p["name"]: p for p in tf.parse_variables(GOLDEN / "local-sandbox")}
    assert [n for n in local if not n.startswith("goldpath_")] == [
        "repository",
        "ref",
        "display_name",
        "memory_mb",
        "allow_network",
    ]
    assert local["repository"]["required"] and local["repository"]["type"] == "string"
    assert local["ref"]["default"] == "main" and local["allow_network"]["type"] == "bool"
    assert local["memory_mb"]["type"] == "number"
    k8s = {p["name"]: p for p in tf.parse_variables(GOLDEN / "kubernetes-pod")}
    assert k8s["labels"]["type"] == "map(string)" and k8s["namespace"]["required"]
    docker = {p["name"]: p for p in tf.parse_variables(GOLDEN / "docker-devcontainer")}
    assert docker["image"]["default"].startswith("mcr.microsoft.com/")


def _session_alive(folder: Path) -> bool:
    pid_file = folder / ".goldpath" / "session.pid"
    if not pid_file.exists():
        return False
    stat = Path(f"/proc/{pid_file.read_text().strip()}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_local_sandbox_start_stop_start_delete(tmp_path):
    if not Path("/usr/local/bin/terraform").exists() and not __import__("shutil").which("terraform"):
        pytest.skip("terraform is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    run = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    run("init", "-q", "-b", "main")
    (repo / "app.py").write_text("print('hi')\n")
    run("add", ".")
    run("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init")
    work = tmp_path / "tf"
    work.mkdir()
    for f in (GOLDEN / "local-sandbox").glob("*.tf"):
        (work / f.name).write_text(f.read_text())
    home = tmp_path / "home"
    events: list[tuple] = []
    values = {
        "repository": str(repo),
        "display_name": INJECTION,
        "goldpath_workspace_id": "ws1",
        "goldpath_home": str(home),
        "goldpath_tools": json.dumps([{"slug": "aider", "launch_command": ["aider", "--message", "{prompt}"]}]),
        **session_values(),
    }
    runner = tf.TerraformRunner(work, on_event=lambda *e: events.append(e))
    folder = home / "workspaces" / "ws1"

    def transition(name: str) -> None:
        tf.write_var_file(work, {**values, "goldpath_transition": name})
        result = runner.init() if not (work / ".terraform").exists() else tf.Result(ok=True)
        assert result.ok, result.error
        result = runner.apply()
        assert result.ok, result.error

    transition("start")
    assert (folder / "src" / "app.py").exists()
    assert (folder / "WORKSPACE.md").read_text().splitlines()[0] == f"# {INJECTION}"
    assert not Path("/tmp/goldpath-pwned").exists()
    assert json.loads((folder / ".goldpath" / "tools.json").read_text())[0]["slug"] == "aider"
    assert _session_alive(folder)
    assert any(e[3] == 1.0 for e in events if len(e) > 3)
    outputs = runner.outputs()
    assert outputs["path"]["value"] == str(folder) and "Terminal" in outputs["terminal"]["value"]
    assert not (folder / ".goldpath" / "session.json").exists()  # the agent token is read and removed
    transition("stop")
    time.sleep(0.2)
    assert not _session_alive(folder) and (folder / ".goldpath" / "state").read_text().strip() == "stopped"
    transition("start")
    assert _session_alive(folder)
    pid = (folder / ".goldpath" / "session.pid").read_text().strip()
    assert runner.destroy().ok
    assert not folder.exists()
    time.sleep(0.2)
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_missing_ref_fails_with_a_clear_message(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "--allow-empty", "-m", "x"],
        cwd=repo,
        check=True,
    )
    work = tmp_path / "tf"
    work.mkdir()
    for f in (GOLDEN / "local-sandbox").glob("*.tf"):
        (work / f.name).write_text(f.read_text())
    tf.write_var_file(
        work,
        {
            "repository": str(repo),
            "ref": "nope",
            "goldpath_workspace_id": "w",
            "goldpath_home": str(tmp_path / "h"),
            **session_values(),
        },
    )
    runner = tf.TerraformRunner(work)
    assert runner.init().ok
    result = runner.apply()
    assert not result.ok and "ref 'nope' not found" in result.error
