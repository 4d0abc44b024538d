"""What the workspace page says after real builds (a real worker, real Terraform, the local-sandbox golden path):

- the status and the session process agree: a build refused before Terraform changed anything leaves a running
  workspace running (its session still runs); a failed update takes the session down and says failed; fixing
  the parameters brings it back up;
- a failed build's error is what went wrong (the command's last output lines), never the provisioner's script;
- Terraform's CLI-configuration warning frame (`╷ │ ╵`) never reaches the log, on a machine whose
  TF_CLI_CONFIG_FILE names a file that does not exist.
"""

from __future__ import annotations

import contextlib
import html
import os
import signal
from pathlib import Path

import pytest

from catalog.conf import goldpath_home
from catalog.models import Repository, Workspace
from catalog.services import workspaces as ws_services
from tests.agent_helpers import make_repo, register
from tests.conftest import WorkerProcess, purge_queues, require_binary
from tests.workspace_helpers import publish_local_sandbox, settled

GOLDEN = Path(__file__).resolve().parent.parent / "catalog" / "golden_paths"
FRAME = ("╷", "│", "╵")


@pytest.fixture
def worker(transactional_db, monkeypatch, tmp_path):
    """A worker on a machine like this image: TF_CLI_CONFIG_FILE names a file that does not exist."""
    require_binary("terraform", "Terraform")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(tmp_path / "missing" / ".terraformrc"))
    purge_queues()
    process = WorkerProcess().start()
    try:
        yield process
    finally:
        process.stop()


def session_pid(ws: Workspace) -> int | None:
    pid_file = goldpath_home() / "workspaces" / str(ws.pk) / ".goldpath" / "session.pid"
    return int(pid_file.read_text().strip()) if pid_file.exists() else None


def alive(pid: int | None) -> bool:
    """A live process (not a zombie waiting for PID 1 to reap it)."""
    if pid is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def page_of(client, ws: Workspace) -> str:
    return html.unescape(client.get(f"/workspaces/{ws.pk}/").content.decode())


def edit(client, ws: Workspace, **parameters) -> None:
    data = {"repository": "sample", "ref": "main", "display_name": "", "memory_mb": "2048", **parameters}
    r = client.post(f"/workspaces/{ws.pk}/edit/", data)
    assert r.status_code == 302, r.content.decode()[-3000:]


@pytest.mark.integration
def test_status_and_session_agree_and_a_failed_update_can_be_fixed(worker, people, teams, client):
    template = publish_local_sandbox()
    repository = register(make_repo(), people, slug="sample")
    pids: list[int] = []
    ws = ws_services.workspace_create(
        actor=people["alice"], name="dev", template=template, parameters={"repository": "sample"}
    )
    try:
        client.force_login(people["alice"])
        ws = settled(ws.pk)
        first = session_pid(ws)
        pids.append(first)
        assert ws.status == "running" and alive(first), page_of(client, ws)[-3000:]
        page = page_of(client, ws)
        for mark in (*FRAME, "CLI configuration"):
            assert mark not in page  # the machine's CLI-config warning is not the build's business

        # refused by the portal before terraform runs: nothing changed, the session runs, the page says running
        Repository.objects.filter(pk=repository.pk).update(url="https://127.0.0.1:6379/x")
        edit(client, ws, display_name="Second")
        ws = settled(ws.pk)
        assert ws.builds.order_by("-number").first().status == "failed"
        assert ws.status == "running" and alive(first)
        page = page_of(client, ws)
        assert 'id="ws-status">Running</span>' in page
        assert "Build 2 (start) failed before anything was changed" in page
        assert "Repository sample was not cloned" in page
        Repository.objects.filter(pk=repository.pk).update(url=repository.url)

        # terraform fails (a ref that does not exist): the workspace is failed and its session is down
        edit(client, ws, ref="nope")
        ws = settled(ws.pk)
        build = ws.builds.order_by("-number").first()
        assert build.status == "failed" and ws.status == "failed"
        assert not alive(first)
        page = page_of(client, ws)
        assert 'id="ws-status">Failed</span>' in page
        error = page.split('id="build-error">', 1)[1].split("</pre>", 1)[0]
        assert f"ref 'nope' not found in {repository.url}" in error
        assert "exit status 1" in error
        for script in ("set -eu", "git -c", "core.hooksPath", "Error running command"):
            assert script not in error and script not in build.error
        for mark in (*FRAME, "CLI configuration"):
            assert mark not in page

        # fixed through the edit form: running again, with a new session
        edit(client, ws, ref="main")
        ws = settled(ws.pk)
        second = session_pid(ws)
        pids.append(second)
        assert ws.status == "running" and second != first and alive(second)
        assert 'id="ws-status">Running</span>' in page_of(client, ws)

        ws_services.workspace_stop(workspace=ws, actor=people["alice"])
        ws = settled(ws.pk)
        assert ws.status == "stopped" and not alive(second)
    finally:
        for pid in pids:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_only_the_cli_configuration_frame_is_dropped_from_terraforms_stderr():
    from catalog.runners.terraform_output import stderr_messages

    stderr = [
        "There are some problems with the CLI configuration:",
        "╷",
        "│ Warning: Unable to open CLI configuration file",
        "│",
        '│ The CLI configuration file at "/root/.terraformrc" does not exist.',
        "╵",
        "╷",
        "│ Warning: Provider development overrides are in effect",
        "│",
        "│ The following provider development overrides are set in the CLI configuration:",
        "╵",
        "╷",
        "│ Warning: Deprecated attribute",
        "│",
        '│ The attribute "x" is deprecated.',
        "╵",
        "plain line",
    ]
    assert stderr_messages(stderr) == ['Warning: Deprecated attribute: The attribute "x" is deprecated.', "plain line"]
