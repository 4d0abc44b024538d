"""A local-sandbox workspace's session for real, without the portal: `python -m catalog.workspace_host DIR start`
as the worker's user (root here: the sandbox runs as the workspace's own host uid) and as an unprivileged worker
(uid 65534, bwrap as itself). A WebSocket server in the test process stands in for the portal's agent link; the
agent in the bubblewrap sandbox dials it through the egress proxy and serves a shell on a PTY."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from catalog.workspace_host import workspace_uid

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed"),
]

ROOT = Path(__file__).resolve().parents[1]
NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
RESULT = r"\b42\r\n(\d+)\r\n(/[^\r\n]*)\r\n"  # the answers to `echo $((6*7)); id -u; pwd`


@dataclass
class Link:
    """One connection the agent made: its handshake headers, the messages it sent, whether it closed."""

    conn: ServerConnection
    authorization: str
    messages: queue.Queue = field(default_factory=queue.Queue)
    closed: threading.Event = field(default_factory=threading.Event)

    def send(self, message: dict) -> None:
        self.conn.send(json.dumps(message))

    def next_text(self, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if isinstance(message, str):
                return json.loads(message)

    def output_until(self, session: bytes, pattern: str, timeout: float = 20.0) -> str:
        """The session's PTY output (binary frames: 16 session-id bytes + data) until `pattern` matches."""
        text, deadline = "", time.monotonic() + timeout
        while not re.search(pattern, text):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {pattern!r} in the terminal output: {text!r}")
            try:
                message = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if isinstance(message, bytes) and message[:16] == session:
                text += message[16:].decode("utf-8", "replace")
        return text


class FakePortal:
    """The portal's agent link: a WebSocket server on 127.0.0.1 that records every connection."""

    def __init__(self) -> None:
        self.links: queue.Queue[Link] = queue.Queue()
        self.server = serve(self._handle, "127.0.0.1", 0)
        self.port = self.server.socket.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/api/v1/workspaces/{uuid.uuid4()}/agent/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handle(self, conn: ServerConnection) -> None:
        link = Link(conn, conn.request.headers.get("Authorization", ""))
        self.links.put(link)
        try:
            for message in conn:
                link.messages.put(message)
        except ConnectionClosed:
            pass
        finally:
            link.closed.set()

    def next_link(self, session_log: Callable[[], str], timeout: float = 45.0) -> Link:
        try:
            return self.links.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the workspace agent never dialled in; session log:\n{session_log()}") from None

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


@dataclass
class Worker:
    """Who runs the session: its argv prefix and environment, the host uid its files get."""

    prefix: list[str]
    env: dict[str, str]
    owner: int | None  # the owner DIR's files need (None: the current user)


def _chown_tree(top: Path, uid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.lchown(name, uid, uid)


def _descendants(pid: int) -> set[tuple[int, str]]:
    """(pid, start time) of every process below `pid`: the agent's sandbox, its zygote, the shells."""
    parents: dict[int, list[tuple[int, str]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        parents.setdefault(int(fields[1]), []).append((int(entry), fields[19]))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child[0])
    return found


def _still_running(procs: set[tuple[int, str]]) -> list[int]:
    """The ones still running (a zombie waiting for init to reap it has ended)."""
    alive = []
    for pid, started in procs:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if fields[19] == started and fields[0] != "Z":
                alive.append(pid)
        except OSError:
            pass
    return alive


def _host(worker: Worker, directory: Path, transition: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*worker.prefix, "-m", "catalog.workspace_host", "--build", "1", str(directory), transition],
        cwd=ROOT,
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(params=["root", "unprivileged"])
def worker(request) -> Iterator[tuple[Worker, Path]]:
    """(the worker, its home): like GOLDPATH_HOME, a 0700 folder of the worker's user holding the workspace, and
    a sandbox root of its own beside it (root: the workspace's uid reaches the checkout through a bind there)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (a root worker, and setpriv to an unprivileged one)")
    base = Path(tempfile.mkdtemp(prefix="gp-wss-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    home = base / "home"
    home.mkdir(mode=0o700)
    env = {"GOLDPATH_SANDBOX_ROOT": str(base / "sandboxes")}
    try:
        if request.param == "root":
            yield Worker([sys.executable], {**os.environ, **env}, None), home
        else:
            (base / "sandboxes").mkdir(mode=0o711)
            for folder in (home, base / "sandboxes"):
                os.chown(folder, NOBODY, NOBODY)
            env |= {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
            # the venv's interpreter lives under /root: the system one, with the checkout on sys.path (cwd)
            yield Worker([*AS_NOBODY, "/usr/bin/python3"], env, NOBODY), home
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _workspace(home: Path, worker: Worker, token: str, url: str) -> Path:
    """DIR: a git checkout in src/ and the session spec (0600) in .goldpath/, owned by the worker's user."""
    directory = home / "ws"
    src = directory / "src"
    src.mkdir(parents=True)
    (src / "app.py").write_text("print('hello')\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(src)]
    for args in (["init", "-q"], ["add", "app.py"], ["commit", "-q", "-m", "first"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    state = directory / ".goldpath"
    state.mkdir(mode=0o700)
    spec = {
        "workspace_id": str(uuid.uuid4()),
        "agent_url": url,
        "agent_token": token,
        "gateway_url": "",
        "env": {"GOLDPATH_TEST": "1"},
        "secrets": {},
        "runtimes": {},
    }
    fd = os.open(state / "session.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(spec, f)
    if worker.owner is not None:
        _chown_tree(directory, worker.owner)
    return directory


def test_a_workspace_session_serves_a_sandboxed_shell_and_stops(worker):
    worker, home = worker
    portal = FakePortal()
    token = f"gpa_{uuid.uuid4().hex}"
    directory = _workspace(home, worker, token, portal.url)
    outside = home / "outside-secret.txt"  # readable by everyone: only the sandbox hides it
    outside.write_text("host secret\n")
    os.chmod(outside, 0o644)
    pid_file = directory / ".goldpath" / "session.pid"
    supervisor: int | None = None
    procs: set[tuple[int, str]] = set()
    try:
        started = _host(worker, directory, "start")
        assert started.returncode == 0, started.stdout + started.stderr
        assert "workspace session started" in started.stdout
        supervisor = int(pid_file.read_text())
        assert not (directory / ".goldpath" / "session.json").exists()  # the token lives only in the session now

        log = directory / ".goldpath" / "session.log"
        link = portal.next_link(lambda: log.read_text(errors="replace")[-3000:] if log.exists() else "")
        assert link.authorization == f"Bearer {token}"
        assert link.next_text() == {"op": "hello", "version": 1}
        rotated = f"gpa_{uuid.uuid4().hex}"
        link.send({"op": "token", "token": rotated})  # as the portal does: the start token is spent

        session = os.urandom(16)
        link.send({"op": "open", "session": session.hex(), "cols": 120, "rows": 40})
        assert link.next_text() == {"op": "opened", "session": session.hex()}
        link.send({"op": "input", "session": session.hex(), "data": "echo $((6*7)); id -u; pwd\r"})
        out = link.output_until(session, RESULT)
        uid, cwd = re.search(RESULT, out).groups()
        assert uid != "0" and cwd == "/workspace"

        # the shell works in the checkout: its file lands in DIR/src, owned by the sandbox's host uid
        link.send({"op": "input", "session": session.hex(), "data": "echo hi > note.txt\r"})
        note = directory / "src" / "note.txt"
        deadline = time.monotonic() + 10
        while not (note.exists() and note.read_text() == "hi\n") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert note.read_text() == "hi\n"
        expected_owner = worker.owner if worker.owner is not None else workspace_uid(directory)
        assert note.stat().st_uid == expected_owner

        # nothing of the host outside the checkout: not the test's file, not the workspace's session state
        link.send({"op": "input", "session": session.hex(),
                   "data": f"cat {outside} 2>&1; ls {directory / '.goldpath'} 2>&1; echo END-$((40+2))\r"})  # fmt: skip
        out = link.output_until(session, r"END-42")
        assert out.count("No such file or directory") >= 2, out
        assert "host secret" not in out

        # the link drops: the agent dials again with the link token the portal handed over (the shell's answers
        # above came after it, so the agent has it)
        link.conn.close()
        link = portal.next_link(lambda: log.read_text(errors="replace")[-3000:], timeout=20)
        assert link.authorization == f"Bearer {rotated}"
        assert link.next_text() == {"op": "hello", "version": 1}

        below = _descendants(supervisor)
        assert below, "the supervisor has no sandbox below it"
        procs = below | {(supervisor, Path(f"/proc/{supervisor}/stat").read_text().rsplit(")", 1)[1].split()[19])}

        stopped = _host(worker, directory, "stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert link.closed.wait(15), "the agent's link stayed open"
        assert not pid_file.exists()
        deadline = time.monotonic() + 10
        while _still_running(procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _still_running(procs) == []
        assert (directory / ".goldpath" / "state").read_text() == "stopped\n"
    finally:
        if supervisor is not None and pid_file.exists():
            _host(worker, directory, "stop")
        for pid in _still_running(procs):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        portal.stop()


def test_a_worker_without_bubblewrap_fails_the_start_with_a_clear_message(tmp_path):
    """The session runs in bubblewrap: without it the start fails at once (Terraform shows the message as the
    build's error), instead of a running workspace whose agent never connects; the spec is still removed."""
    worker = Worker([sys.executable], {**os.environ, "PATH": "/nonexistent"}, None)
    directory = _workspace(tmp_path, worker, "start-token", "ws://127.0.0.1:9/")
    done = _host(worker, directory, "start")
    assert done.returncode == 1
    assert "bubblewrap (bwrap) is not installed" in done.stderr
    assert not (directory / ".goldpath" / "session.json").exists()
    assert not (directory / ".goldpath" / "session.pid").exists()
