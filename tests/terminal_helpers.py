"""A real ASGI web server (uvicorn, the one `make run` uses) on the test database, and a running local-sandbox
workspace whose workspace agent (in its bubblewrap sandbox, started by a real worker through real Terraform) has
dialled in to that server. WebSocket clients are the `websockets` library's, over real sockets."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from websockets.sync.client import connect

from catalog.conf import goldpath_home
from catalog.models import Workspace
from catalog.services import workspaces as ws_services
from tests.conftest import ROOT, _worker_env, wait_for
from tests.workspace_helpers import publish_local_sandbox, sample_repository, settled  # noqa: F401 - re-exported for tests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebServer:
    """`uvicorn portal.asgi:application` in its own process group, reading the test database."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = goldpath_home() / f"test-web-{self.port}.log"

    def start(self, timeout: float = 30.0) -> WebServer:
        self.log = open(self.log_path, "a+")  # noqa: SIM115
        cmd = [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1",
               "--port", str(self.port), "--ws", "websockets-sansio", "--log-level", "warning", "--no-access-log"]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=_worker_env(), stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the web server exited:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code in (200, 503):
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"the web server did not start:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


def agent_ready(ws_id, timeout: float = 60) -> Workspace:
    return wait_for(
        lambda: (w := Workspace.objects.get(pk=ws_id)).agent_state == "ready" and w, timeout, message="agent ready"
    )


def session_dir(ws: Workspace) -> Path:
    return goldpath_home() / "workspaces" / str(ws.pk) / ".goldpath"


def kill_session(ws: Workspace) -> None:
    pid_file = session_dir(ws) / "session.pid"
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)


def start_workspace(people, *, name: str = "dev", record_sessions: bool = False, tools=None) -> Workspace:
    template = publish_local_sandbox(record_sessions=record_sessions)
    sample_repository(people)
    ws = ws_services.workspace_create(
        actor=people["alice"], name=name, template=template, parameters={"repository": "sample"}, tools=tools
    )
    ws = settled(ws.pk)
    build = ws.builds.order_by("-number").first()
    assert ws.status == "running", (build.error, list(build.log_lines.values_list("text", flat=True)))
    return ws


@dataclass
class Terminal:
    """A terminal client: send keystrokes, read output until a marker shows up."""

    sock: object
    seen: bytes = b""

    def send(self, text: str) -> None:
        self.sock.send(json.dumps({"data": text}))

    def resize(self, cols: int, rows: int) -> None:
        self.sock.send(json.dumps({"resize": {"cols": cols, "rows": rows}}))

    def read_until(self, marker: bytes, timeout: float = 15.0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{marker!r} not seen; got {self.seen[-2000:]!r}")
            try:
                frame = self.sock.recv(timeout=left)
            except TimeoutError:
                continue
            assert isinstance(frame, bytes), f"text frame from the server: {frame!r}"
            self.seen += frame
        return self.seen

    def run(self, command: str, timeout: float = 15.0) -> str:
        """Run `command`, return what it printed between two markers (the prompt and echo excluded)."""
        tag = os.urandom(4).hex()
        self.seen = b""
        self.send(f'echo B""{tag}; {command}; echo E""{tag}\r')  # the typed line's echo never holds the markers
        out = self.read_until(f"E{tag}\r\n".encode(), timeout).decode(errors="replace")
        body = out.split(f"B{tag}\r\n", 1)[1] if f"B{tag}\r\n" in out else out
        return body.split(f"E{tag}", 1)[0].strip()


def open_terminal(server: WebServer, ws: Workspace, token: str, **kwargs) -> Terminal:
    path = f"/api/v1/workspaces/{ws.pk}/terminal/"
    sock = connect(server.ws_url(path), additional_headers={"Authorization": f"Token {token}"}, **kwargs)
    return Terminal(sock)
