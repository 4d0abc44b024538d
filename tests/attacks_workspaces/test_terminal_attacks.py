"""Attacks on workspace terminals (issue 15) over the real stack: uvicorn, a worker, real Terraform and the
workspace agent in its bubblewrap sandbox. Each test performs the attack and asserts what a user would notice;
it fails while the hole exists."""

from __future__ import annotations

import time

import httpx
import pytest
from django.test import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from catalog import api_tokens
from catalog.models import AuditEvent, TerminalSession
from tests.conftest import wait_for
from tests.terminal_helpers import WebServer, open_terminal

pytestmark = pytest.mark.integration


def _closed_code(sock, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            sock.recv(timeout=deadline - time.monotonic())
        except TimeoutError:
            break
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else 1006
    raise AssertionError("the socket stayed open")


def _refused(url: str, ws, **headers) -> int:
    with pytest.raises(InvalidStatus) as info:
        connect(f"{url.replace('http', 'ws', 1)}/api/v1/workspaces/{ws.pk}/terminal/", additional_headers=headers,
                open_timeout=10)  # fmt: skip
    return info.value.response.status_code


def test_garbage_frames_end_the_terminal_cleanly_and_audited(running_terminal_workspace, people):
    """The owner's client sends frames the protocol refuses: a lone surrogate (`"\\ud800"`, valid JSON whose text
    cannot be encoded), JSON nested 100,000 deep (RecursionError, not ValueError) and a binary frame. Each must
    close with 4400 and leave a closed, audited session; before the fix the first two crashed the consumer
    (1006 at the client): its session stayed open forever with no `terminal.closed` (duration and bytes never
    audited) and the agent was never told to close the PTY."""
    url, ws, _user, _password = running_terminal_workspace
    server = WebServer(port=int(url.rsplit(":", 1)[1]))
    alice = api_tokens.token_issue(user=people["alice"]).key
    for frame in ('{"data": "\\ud800"}', "[" * 100_000, b"\x00binary"):
        term = open_terminal(server, ws, alice)
        assert term.run("echo ok") == "ok"
        session = TerminalSession.objects.filter(workspace=ws, closed_at__isnull=True).get()
        term.sock.send(frame)
        assert _closed_code(term.sock) == 4400, frame[:20]
        closed = wait_for(
            lambda s=session: TerminalSession.objects.filter(pk=s.pk, closed_at__isnull=False).first(), 10
        )
        assert closed.close_reason == "a message was not understood"
        assert AuditEvent.objects.filter(verb="terminal.closed", payload__session=str(session.pk)).exists()
    # the agent is still there: a new terminal works
    assert open_terminal(server, ws, alice).run("echo alive") == "alive"
    assert "Traceback" not in server.output()


def test_only_the_owner_with_a_live_credential_opens_the_terminal(running_terminal_workspace, people):
    """Pins: platform engineers, admins, managers and auditors never get the shell; alice's cookie counts only with
    her own Origin (not missing, not `null`, not a look-alike host); her revoked or expired token does not work."""
    url, ws, _user, _password = running_terminal_workspace
    for name in ("bob", "admin", "carol", "erin", "dave"):
        assert _refused(url, ws, Authorization=f"Token {api_tokens.token_issue(user=people[name]).key}") == 403, name
    client = Client()
    client.force_login(people["alice"])
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    host = url.split("://", 1)[1]
    for origin in (None, "null", f"http://{host}.evil.example", f"http://evil.example@{host}x", "file://"):
        headers = {"Cookie": cookie} | ({"Origin": origin} if origin else {})
        assert _refused(url, ws, **headers) == 403, origin
    token = api_tokens.token_issue(user=people["alice"])
    token.created = token.created.replace(year=2000)
    token.save(update_fields=["created"])
    assert _refused(url, ws, Authorization=f"Token {token.key}") == 403
    api_tokens.token_revoke(token=token, actor=people["alice"])
    assert _refused(url, ws, Authorization=f"Token {token.key}") == 403
    # the agent's link token in place of a user's, and a user's token on the agent link
    with pytest.raises(InvalidStatus):
        connect(f"{url.replace('http', 'ws', 1)}/api/v1/workspaces/{ws.pk}/agent/",
                additional_headers={"Cookie": cookie, "Origin": url}, open_timeout=10)  # fmt: skip

    # recordings: the owner and auditors, not her manager or another developer
    fresh = api_tokens.token_issue(user=people["alice"]).key
    term = open_terminal(WebServer(port=int(url.rsplit(":", 1)[1])), ws, fresh)
    assert term.run("echo recorded") == "recorded"
    term.sock.close()
    session = wait_for(lambda: TerminalSession.objects.filter(workspace=ws, closed_at__isnull=False).first(), 10)
    path = f"{url}/api/v1/terminal-sessions/{session.pk}/recording/"
    for name, status in (("alice", 200), ("erin", 200), ("carol", 404), ("dave", 404)):
        key = api_tokens.token_issue(user=people[name]).key
        assert httpx.get(path, headers={"Authorization": f"Token {key}"}).status_code == status, name
