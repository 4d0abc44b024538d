"""Shared setup for agent-run tests: a real git repository and the demo agent granted to payments."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from catalog.conf import goldpath_home
from catalog.models import ToolVersion
from catalog.services import access
from tests.factories import ToolFactory

DEMO_ARGV = ["python3", "-m", "catalog.demo_agent", "--index", "{index}", "--prompt={prompt}"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        # safe.directory: a workspace's checkout belongs to its sandbox uid (tests read it as root)
        ["git", "-c", "safe.directory=*", *args], cwd=repo, check=True, capture_output=True, text=True, env=git_env()
    ).stdout.strip()


def git_env() -> dict[str, str]:
    import os

    return {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }


def repo_path(name: str = "sample") -> Path:
    """A fresh folder under GOLDPATH_HOME/repositories, where local repositories may be registered."""
    import uuid


    return goldpath_home() / "repositories" / f"{name}-{uuid.uuid4().hex[:8]}"


def register(path: Path, people, *, slug: str = "sample", teams=("payments",), classification: str = "internal"):
    """Register a local repository through the service, as a platform engineer would."""
    from catalog.services.repositories import repository_create

    return repository_create(
        actor=people["bob"],
        slug=slug,
        name=slug.title(),
        url=str(path),
        teams=list(teams),
        data_classification=classification,
        default_branch="main",
    )


def make_repo(path: Path | None = None) -> Path:
    path = path or repo_path()
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# Sample service\n\nHello.\n")
    (path / "app.py").write_text("def add(a, b):\n    return a + b\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "Initial commit")
    return path


def demo_tool(people, teams, *, slug: str = "demo-agent", grant_to=("payments",), argv=None):
    tool = ToolFactory(
        slug=slug,
        name="Demo agent (offline demo)",
        status="approved",
        risk_tier="low",
        max_data_classification="confidential",
    )
    ToolVersion.objects.create(tool=tool, version="1.0.0", launch_command=argv or DEMO_ARGV, review_state="approved")
    for team in grant_to:
        access.grant_create(actor=people["bob"], team=teams[team], tool=tool)
    return tool


PYTHON = sys.executable


def socket_post(
    path: str, url: str, payload: dict, *, token: str | None = None, header: str | None = None
) -> tuple[int, dict]:
    """POST JSON over a run's Unix socket, as an agent inside its sandbox would."""
    import http.client
    import json
    import socket

    class Connection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(path)

    headers = {"Content-Type": "application/json"}
    if token or header:
        headers["Authorization"] = header or f"Agent {token}"
    conn = Connection("localhost")
    conn.request("POST", url, body=json.dumps(payload), headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, (json.loads(body) if body.startswith(b"{") else {"raw": body.decode()})


def change_diff(repo: Path, scratch: Path, *, name: str = "GREETING.md", text: str = "Hello from an agent.\n") -> str:
    """A real `git diff` against the repository's HEAD (made in a throwaway clone) that accepts cleanly."""
    clone = scratch / f"clone-{name}"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True, capture_output=True, env=git_env())
    (clone / name).write_text(text)
    git(clone, "add", "-A")
    return git(clone, "diff", "--cached", "--binary") + "\n"


def worker_accepts(group) -> None:
    """Do what the worker's accept task does, in this process (pages tests have no worker; the integration
    tests go through a real one)."""
    from catalog.tasks.agents import accept_run

    accept_run(group.pk, group.requester_id)


def finish_run(run, *, status: str = "succeeded", diff: str = "", test_exit_code: int | None = None, log=()):
    """Drive a run through the worker's service calls (claim, log, finish) without a worker."""
    from catalog.services import agent_runs as agent_services

    agent_services.agent_run_claim(run_id=run.pk, worker="test-worker")
    if log:
        agent_services.agent_run_log(run_id=run.pk, lines=[("stdout", line) for line in log])
    files = [line[6:] for line in diff.splitlines() if line.startswith("+++ b/")]
    return agent_services.agent_run_finish(
        run_id=run.pk,
        status=status,
        exit_code=0 if status == "succeeded" else 1,
        diff=diff,
        diff_stat={"files": files, "insertions": diff.count("\n+") - len(files), "deletions": 0} if diff else {},
        test_exit_code=test_exit_code,
        test_output="1 passed" if test_exit_code == 0 else "",
    )
