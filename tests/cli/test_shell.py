"""`goldpath shell` against a real ASGI server, worker and running local-sandbox workspace whose agent has dialled
in: one command with its output and exit status, piped input, refusals (another user, an unknown name, an
unreachable portal), the workspace stopping under an open session (4410) and a stopped workspace (4409)."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from catalog import api_tokens
from catalog.services import workspaces as ws_services
from tests.cli.conftest import GOLDPATH, Cli
from tests.terminal_helpers import free_port, settled

pytestmark = [pytest.mark.integration]


class TokenCli(Cli):
    """The CLI signed in through GOLDPATH_URL/GOLDPATH_TOKEN (as in CI): the test settings' password hasher is
    not the web server's, so `goldpath login` cannot be used against that server."""

    def __init__(self, home, url: str, token: str) -> None:
        home.mkdir()
        super().__init__(home, url)
        self.token = token

    def env(self, extra=None):
        return super().env({"GOLDPATH_URL": self.url, "GOLDPATH_TOKEN": self.token, **(extra or {})})


def as_user(people, name: str, url: str, tmp_path) -> TokenCli:
    return TokenCli(tmp_path / name, url, api_tokens.token_issue(user=people[name]).key)


def no_traceback(result) -> bool:
    return "Traceback" not in result.err and "Traceback" not in result.out


def test_shell_runs_commands_in_your_workspace_and_refuses_everyone_else(running_terminal_workspace, people, tmp_path):
    url, ws, username, _password = running_terminal_workspace
    alice = as_user(people, username, url, tmp_path)

    # one command: its output only (no prompt, no echo of what was typed), exit 0
    result = alice("shell", "dev", "-c", "echo $((6*7))", timeout=60)
    assert result.code == 0, result
    assert result.out == "42\n", result
    assert no_traceback(result)
    # ... by id too; the command's exit status is the CLI's; quotes, `;` and `#` stay the command's own
    result = alice("shell", str(ws.pk), "-c", "printf 'a b\\n'; id -u # a comment; (exit 3)", timeout=60)
    assert result.code == 0 and result.out.splitlines()[0] == "a b", result
    assert result.out.splitlines()[1] != "0"  # not root inside the workspace
    result = alice("shell", "dev", "-c", "echo out; (exit 3)", timeout=60)
    assert (result.code, result.out) == (3, "out\n"), result

    # piped standard input: typed line by line; the session ends with the input
    result = alice("shell", "dev", stdin="echo $((6*9))\n", timeout=60)
    assert result.code == 0, result
    assert "54" in result.out, result
    assert "Session in workspace dev ended." in result.err

    # another developer does not even see it; a platform engineer sees it but may not open its terminal
    dave = as_user(people, "dave", url, tmp_path)
    result = dave("shell", "dev", "-c", "id")
    assert result.code == 1 and "No workspace named 'dev'" in result.err and no_traceback(result), result
    bob = as_user(people, "bob", url, tmp_path)
    result = bob("shell", str(ws.pk), "-c", "id")
    assert result.code == 1 and "Only the owner of workspace dev may open its terminal" in result.err, result
    assert result.out == "" and no_traceback(result)
    result = alice("shell", "no-such-workspace")
    assert result.code == 1 and "No workspace named 'no-such-workspace'" in result.err and no_traceback(result)
    unreachable = TokenCli(tmp_path / "nobody", f"http://127.0.0.1:{free_port()}", alice.token)
    result = unreachable("shell", "dev")
    assert result.code == 1 and "Cannot reach the portal" in result.err and no_traceback(result), result

    # the workspace stops under an open session: the CLI says so and exits 1
    proc = subprocess.Popen(
        [str(GOLDPATH), "shell", "dev"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=alice.env(), cwd=alice.home,
    )  # fmt: skip
    seen = bytearray()

    def read() -> None:
        for chunk in iter(lambda: proc.stdout.read1(4096), b""):
            seen.extend(chunk)

    threading.Thread(target=read, daemon=True).start()
    try:
        proc.stdin.write(b"echo up$((1+1))\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        while b"up2" not in seen and time.monotonic() < deadline:
            time.sleep(0.1)
        assert b"up2" in seen, bytes(seen)
        ws_services.workspace_stop(workspace=ws, actor=people["alice"])
        code = proc.wait(60)
        err = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 1 and "Workspace dev stopped" in err and "Traceback" not in err, err
    assert settled(ws.pk).status == "stopped"

    # a stopped workspace: not running, and how to start it (exit 2: scripts can start it and retry)
    result = alice("shell", "dev", "-c", "echo $((6*7))")
    assert result.code == 2, result
    assert "Workspace dev is not running (stopped)" in result.err, result
    assert "goldpath workspaces start dev --wait" in result.err and result.out == "" and no_traceback(result)
