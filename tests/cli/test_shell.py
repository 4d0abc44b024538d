"""`goldpath shell` against a real ASGI server, worker and running local-sandbox workspace whose agent has dialled
in: one command with its output and exit status, an interactive terminal on a PTY (raw mode, resize, restored),
piped input, refusals (another user, an unknown name, an unreachable portal), the workspace stopping under an
open session (4410) and a stopped workspace (not running, exit 2). Then, without a server: what each close code
becomes, and how a command's output is cut out of the terminal's stream."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import threading
import time

import pytest
import typer

from catalog import api_tokens
from catalog.cli import shell as shell_cmd
from catalog.cli import terminal
from catalog.cli.errors import CliError
from catalog.services import workspaces as ws_services
from tests.cli.conftest import GOLDPATH, Cli
from tests.terminal_helpers import free_port, settled


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


def set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def read_until(fd: int, marker: bytes, seen: bytearray, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{marker!r} not seen in {bytes(seen)[-1500:]!r}"
        if select.select([fd], [], [], left)[0]:
            try:
                seen.extend(os.read(fd, 4096))
            except OSError:  # EIO: the CLI exited and closed the terminal
                break


def interactive_session(cli: Cli) -> None:
    """`goldpath shell dev` on a real terminal (a PTY): raw mode, the window size now and after a resize,
    `exit` ends it with 0 and the terminal is as it was (echo and line editing back on)."""
    master, slave = os.openpty()
    set_size(slave, 100, 30)
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen([str(GOLDPATH), "shell", "dev"], stdin=slave, stdout=slave, stderr=slave,
                            env=cli.env(), cwd=cli.home, start_new_session=True)  # fmt: skip
    seen = bytearray()
    try:
        read_until(master, b"Terminal of workspace dev", seen)
        os.write(master, b"stty size; echo A$((40+2))\r")
        read_until(master, b"A42", seen)
        assert b"30 100" in seen, bytes(seen)
        assert not termios.tcgetattr(slave)[3] & termios.ECHO  # raw: the workspace's shell echoes, not us
        set_size(slave, 120, 40)
        proc.send_signal(signal.SIGWINCH)
        time.sleep(0.5)
        os.write(master, b"stty size; echo B$((40+2))\r")
        read_until(master, b"B42", seen)
        assert b"40 120" in seen, bytes(seen)
        os.write(master, b"exit\r")
        assert proc.wait(20) == 0
        read_until(master, b"Session in workspace dev ended.", seen)
        assert b"Traceback" not in seen
        assert termios.tcgetattr(slave) == before  # the local terminal is restored
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        os.close(slave)


def no_traceback(result) -> bool:
    return "Traceback" not in result.err and "Traceback" not in result.out


@pytest.mark.integration
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

    interactive_session(alice)

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


@pytest.mark.parametrize(
    ("code", "exit_code", "words"),
    [
        (4403, 1, "Only the owner of workspace dev may open its terminal"),
        (4409, 2, "Workspace dev is not running (stopped): start it with `goldpath workspaces start dev --wait`"),
        (4503, 2, "not connected yet (it dials in as the workspace starts): try again in a few seconds"),
        (4410, 1, "Workspace dev stopped (or its agent disconnected)"),
        (1006, 1, "The connection to the portal at http://portal was lost"),
        (4999, 1, "closed with code 4999"),
    ],
)
def test_each_close_code_is_a_message_and_an_exit_code(code, exit_code, words):
    """What the portal's close codes become (the live test above meets 4410 and the HTTP 403 refusal; 4409 and
    4503 arrive only when the workspace changes between the CLI's API lookup and its connect)."""
    with pytest.raises(CliError) as raised:
        shell_cmd._conclude(terminal.Ending(code), {"status": "stopped"}, "dev", False, "http://portal")
    assert raised.value.exit_code == exit_code and words in raised.value.message


def test_a_normal_end_exits_0_or_with_the_commands_status():
    shell_cmd._conclude(terminal.Ending(1000), {}, "dev", False, "http://portal")  # no error
    with pytest.raises(typer.Exit) as raised:
        shell_cmd._conclude(terminal.Ending(1000, status=7), {}, "dev", True, "http://portal")
    assert raised.value.exit_code == 7


def test_command_output_is_cut_out_of_the_terminal_stream():
    """Prompt and echo dropped, the end marker's status kept, even when it arrives split across frames."""
    written = []
    out = terminal.CommandOutput("feedc0ffee00", lambda data: written.append(data) or True)
    line = terminal.command_line("echo 'it''s' # not a comment of ours", "feedc0ffee00")
    assert "Bfeedc0ffee00" not in line and "Efeedc0ffee00" not in line  # the echo of the typed line never matches
    frames = [
        b"$ " + line.encode() + b"\r\n",
        b"Bfeedc0ffee00\r\nit",
        b"s\r\nmore\r",
        b"\n\r\nEfeedc0f",
        b"fee00 5\r\n$ ",
    ]
    results = [out.feed(frame) for frame in frames]
    assert results == [True, True, True, True, False]
    assert b"".join(written) == b"its\nmore\n" and out.status == 5
    assert out.feed(b"late output") is False and b"".join(written) == b"its\nmore\n"
