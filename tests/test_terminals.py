"""Terminals in workspaces, end to end: a real ASGI server, a real worker building a local-sandbox workspace with
real Terraform, the workspace agent in its bubblewrap sandbox dialling out to the server, and WebSocket clients."""

from __future__ import annotations

import json
import os
import re
import time

import httpx
import pytest
from django.test import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from catalog import api_tokens
from catalog.conf import goldpath_home
from catalog.models import AuditEvent, TerminalSession, Workspace
from catalog.services import workspaces as ws_services
from tests.conftest import WorkerProcess, purge_queues, wait_for
from tests.terminal_helpers import (
    WebServer,
    agent_ready,
    kill_session,
    open_terminal,
    settled,
    start_workspace,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(transactional_db, people, teams, monkeypatch):
    """Web server first (the worker tells workspaces where it is), then a worker; sessions never outlive the test."""
    server = WebServer().start()
    monkeypatch.setenv("GOLDPATH_AGENT_URL", server.url)
    purge_queues()
    worker = WorkerProcess().start()
    started: list[Workspace] = []
    try:
        yield server, worker, started
    finally:
        for ws in started:
            kill_session(ws)
        worker.stop()
        server.stop()


def closed_code(term, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            term.sock.recv(timeout=deadline - time.monotonic())
        except TimeoutError:
            break
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else 1006
    raise AssertionError("the socket stayed open")


def refused_status(server, ws, **headers) -> int:
    with pytest.raises(InvalidStatus) as info:
        connect(server.ws_url(f"/api/v1/workspaces/{ws.pk}/terminal/"), additional_headers=headers, open_timeout=10)
    return info.value.response.status_code


def test_a_terminal_in_a_running_workspace_from_open_to_stop_restart_and_reconnects(stack, people):
    server, worker, started = stack
    ws = start_workspace(people, record_sessions=True)
    started.append(ws)
    ws = agent_ready(ws.pk)
    alice = api_tokens.token_issue(user=people["alice"]).key

    # the API shows the agent's link and the last activity
    Workspace.objects.filter(pk=ws.pk).update(last_activity_at="2020-01-01T00:00:00Z")
    detail = httpx.get(f"{server.url}/api/v1/workspaces/{ws.pk}/", headers={"Authorization": f"Token {alice}"}).json()
    assert detail["agent_state"] == "ready" and detail["last_activity_at"].startswith("2020-01-01")

    term = open_terminal(server, ws, alice)
    assert term.run("echo $((6*7))") == "42"
    assert term.run("id -u") not in ("0", "")  # an unprivileged user inside
    where, files = term.run("pwd; ls").split("\r\n", 1)
    assert where == "/workspace" and "app.py" in files.split()  # in the checkout
    home = str(goldpath_home())
    assert "No such file or directory" in term.run(f"ls {home} 2>&1; cat {home}/secret.key 2>&1")
    # the shell has no agent token; the start token it can dig out of the sandbox's processes is spent: the agent
    # exchanged it for a link token held only in its (non-dumpable) memory, so it cannot hijack the agent's link
    assert term.run("env | grep -c GOLDPATH_AGENT_TOKEN") == "0"
    found = set(re.findall(r"gpa_[A-Za-z0-9_-]{20,}", term.run("cat /proc/*/environ /proc/*/cmdline 2>/dev/null | tr '\\0' '\\n' | grep gpa_")))
    assert found  # bwrap keeps the environment it was started with
    for token in found:
        with pytest.raises(InvalidStatus):
            connect(server.ws_url(f"/api/v1/workspaces/{ws.pk}/agent/"), additional_headers={"Authorization": f"Bearer {token}"})
    term.resize(120, 40)
    assert term.run("stty size") == "40 120"
    assert Workspace.objects.get(pk=ws.pk).last_activity_at.year > 2020  # typing is activity (autostop)

    # only the owner: another developer, no credentials, a cross-site page with alice's cookie are all refused
    dave = api_tokens.token_issue(user=people["dave"]).key
    assert refused_status(server, ws, Authorization=f"Token {dave}") == 403
    assert refused_status(server, ws) == 403
    client = Client()
    client.force_login(people["alice"])
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    assert refused_status(server, ws, Cookie=cookie, Origin="http://evil.example") == 403
    browser = connect(
        server.ws_url(f"/api/v1/workspaces/{ws.pk}/terminal/"),
        additional_headers={"Cookie": cookie, "Origin": f"http://127.0.0.1:{server.port}"},
    )
    browser.close()

    # stop closes the socket; the session is audited with its byte counts and recorded
    ws_services.workspace_stop(workspace=ws, actor=people["alice"])
    assert closed_code(term) == 4410
    assert settled(ws.pk).status == "stopped"
    session = wait_for(lambda: TerminalSession.objects.filter(workspace=ws, user=people["alice"], closed_at__isnull=False).order_by("opened_at").first(), 10)
    assert session.bytes_in > 0 and session.bytes_out > 0 and session.recorded
    closed = AuditEvent.objects.filter(verb="terminal.closed", payload__session=str(session.pk)).get()
    assert closed.payload["bytes_in"] == session.bytes_in and closed.payload["duration_s"] > 0
    assert AuditEvent.objects.filter(verb="terminal.opened", payload__session=str(session.pk)).exists()
    cast = httpx.get(
        f"{server.url}/api/v1/terminal-sessions/{session.pk}/recording/", headers={"Authorization": f"Token {alice}"}
    )
    assert cast.status_code == 200 and cast.headers["content-type"] == "application/x-asciicast"
    header, *events = cast.text.splitlines()
    assert json.loads(header)["version"] == 2 and "42" in "".join(json.loads(e)[2] for e in events)
    assert httpx.get(
        f"{server.url}/api/v1/terminal-sessions/{session.pk}/recording/", headers={"Authorization": f"Token {dave}"}
    ).status_code == 404

    # a stopped workspace: the socket closes with 4409
    term = open_terminal(server, ws, alice)
    assert closed_code(term) == 4409

    # start again: a new token, the agent dials in again
    ws_services.workspace_start(workspace=ws, actor=people["alice"])
    assert settled(ws.pk).status == "running"
    agent_ready(ws.pk)
    term = open_terminal(server, ws, alice)
    assert term.run("echo again") == "again"
    term.sock.close()

    # the worker dies and comes back: the workspace keeps its agent, terminals keep working
    worker.kill()
    worker.stop()
    replacement = WorkerProcess().start()
    try:
        assert open_terminal(server, ws, alice).run("echo still") == "still"
    finally:
        replacement.stop()

    # the portal restarts: the agent reconnects by itself
    server.stop()
    wait_for(lambda: Workspace.objects.get(pk=ws.pk).agent_state == "disconnected", 20, message="agent disconnected")
    restarted = WebServer(port=server.port).start()
    try:
        agent_ready(ws.pk, timeout=30)
        assert open_terminal(restarted, ws, alice).run("echo back") == "back"
    finally:
        restarted.stop()


def test_the_agent_link_refuses_a_wrong_or_old_token(stack, people):
    server, worker, started = stack
    ws = start_workspace(people)
    started.append(ws)
    agent_ready(ws.pk)
    path = f"/api/v1/workspaces/{ws.pk}/agent/"
    for headers in ({"Authorization": "Bearer gpa_wrong"}, {}, {"Authorization": f"Token {api_tokens.token_issue(user=people['alice']).key}"}):
        with pytest.raises(InvalidStatus) as info:
            connect(server.ws_url(path), additional_headers=headers, open_timeout=10)
        assert info.value.response.status_code == 403
    assert Workspace.objects.get(pk=ws.pk).agent_state == "ready"  # refused links change nothing
    assert os.path.exists(goldpath_home() / "workspaces" / str(ws.pk) / ".goldpath" / "session.pid")
    assert not (goldpath_home() / "workspaces" / str(ws.pk) / ".goldpath" / "session.json").exists()


def test_a_dead_agent_comes_back_with_a_new_token_from_its_session(stack, people):
    """The agent's start token is spent on its first hello; when the agent process dies, the session (outside the
    sandbox) asks the portal for a new one with its own key, which nothing in the workspace ever sees."""
    server, worker, started = stack
    ws = start_workspace(people)
    started.append(ws)
    agent_ready(ws.pk)
    alice = api_tokens.token_issue(user=people["alice"]).key
    marker = "/opt/goldpath/lib/goldpath_workspace_agent.py"
    agents = [p for p in os.listdir("/proc") if p.isdigit() and marker.encode() in _cmdline(p)]
    assert agents
    for pid in agents:
        os.kill(int(pid), 9)
    wait_for(lambda: Workspace.objects.get(pk=ws.pk).agent_state != "ready", 20, message="the agent to drop")
    agent_ready(ws.pk, timeout=60)
    assert open_terminal(server, ws, alice).run("echo alive") == "alive"
    # the token endpoint answers only the current start's session key
    url = f"{server.url}/api/v1/workspaces/{ws.pk}/agent/token/"
    build = ws.builds.order_by("-number").first()
    from catalog.terminals.services import session_key

    for key in ("forged", session_key(workspace_id=ws.pk, build_id=build.pk + 1000), f"Token {alice}"):
        assert httpx.post(url, headers={"Authorization": f"Bearer {key}"}).status_code == 403
    assert httpx.post(url, headers={"Authorization": f"Token {alice}"}).status_code == 403
    assert Workspace.objects.get(pk=ws.pk).agent_state == "ready"  # refusals changed nothing


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""
