"""The terminal page and the workspace page's terminal parts: only the owner opens the terminal (404 for who cannot
see the workspace, 403 for who can); the page points xterm.js (vendored, no CDN) at the WebSocket URL; the
Terminal button shows for the owner of a running workspace only; recent sessions are listed to the owner and to
who may read the audit log, with a Replay button for recorded ones."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse
from django.utils import timezone

from catalog.models import TerminalSession, Workspace
from catalog.terminals.selectors import terminal_sessions_for, visible_terminal_sessions
from tests.workspace_helpers import running_workspace

pytestmark = pytest.mark.django_db

CAST = '{"version": 2, "width": 80, "height": 24, "timestamp": 1700000000}\n[0.1, "o", "$ echo hi\\r\\nhi\\r\\n"]\n'


@pytest.fixture
def ws(people, teams) -> Workspace:
    return running_workspace(people, teams)


def page(client, user, ws):
    client.force_login(user)
    return client.get(reverse("goldpath:workspace-terminal", kwargs={"pk": ws.pk}))


def detail(client, user, ws) -> str:
    client.force_login(user)
    r = client.get(reverse("goldpath:workspace-detail", kwargs={"pk": ws.pk}))
    assert r.status_code == 200
    return r.content.decode()


def test_owner_gets_the_terminal_page_with_the_websocket_url(client, people, ws):
    r = page(client, people["alice"], ws)
    assert r.status_code == 200
    html = r.content.decode()
    ws_path = reverse("goldpath:api:workspace-terminal", kwargs={"pk": ws.pk})
    assert ws_path == f"/api/v1/workspaces/{ws.pk}/terminal/"
    assert f'data-ws-path="{ws_path}"' in html
    for asset in ("vendor/xterm/xterm.js", "vendor/xterm/addon-fit.js", "vendor/xterm/xterm.css", "terminal.js"):
        assert f"/static/goldpath/{asset}" in html
        assert finders.find(f"goldpath/{asset}"), asset  # shipped with the app, nothing from a CDN
    assert "https://" not in html and "cdn" not in html.lower()


def test_a_stopped_workspace_still_opens_the_page_and_says_so(client, people, ws):
    Workspace.objects.filter(pk=ws.pk).update(status="stopped")
    r = page(client, people["alice"], ws)
    assert r.status_code == 200 and b"start it to open a terminal" in r.content


@pytest.mark.parametrize(
    ("who", "status"),
    [("dave", 404), ("bob", 403), ("carol", 403), ("erin", 403), ("admin", 403)],
)
def test_nobody_but_the_owner_opens_it(client, people, ws, who, status):
    """Another developer cannot see alice's workspace (404); platform engineers, her manager, auditors and admins
    can see it but never get its shell (403)."""
    r = page(client, people[who], ws)
    assert r.status_code == status
    assert b"data-ws-path" not in r.content


def test_anonymous_is_sent_to_sign_in(client, ws):
    r = client.get(reverse("goldpath:workspace-terminal", kwargs={"pk": ws.pk}))
    assert r.status_code == 302 and "login" in r["Location"]


def test_unknown_workspace_is_a_404(client, people):
    client.force_login(people["alice"])
    r = client.get("/workspaces/00000000-0000-0000-0000-000000000000/terminal/")
    assert r.status_code == 404


def test_terminal_button_for_the_owner_of_a_running_workspace_only(client, people, ws):
    href = f'href="/workspaces/{ws.pk}/terminal/"'
    assert href in detail(client, people["alice"], ws)
    for other in ("bob", "admin", "erin"):  # they see the workspace (bob and admin may even stop it)
        assert href not in detail(client, people[other], ws)
    for status in ("stopped", "starting", "failed"):
        Workspace.objects.filter(pk=ws.pk).update(status=status)
        assert href not in detail(client, people["alice"], ws), status


def test_terminal_button_appears_live_when_the_workspace_runs(client, people, ws):
    """The log poller swaps the buttons in out of band: the button comes with them."""
    client.force_login(people["alice"])
    part = client.get(f"/workspaces/{ws.pk}/log").content.decode()
    assert f'href="/workspaces/{ws.pk}/terminal/"' in part


def test_plain_get_of_the_websocket_endpoint_is_426(client, people, ws):
    client.force_login(people["alice"])
    r = client.get(reverse("goldpath:api:workspace-terminal", kwargs={"pk": ws.pk}))
    assert r.status_code == 426
    assert r.json()["detail"]


def _session(ws, user, *, recorded: bool, **extra) -> TerminalSession:
    s = TerminalSession.objects.create(workspace=ws, user=user, recorded=recorded, **extra)
    opened = timezone.now() - dt.timedelta(minutes=5)
    TerminalSession.objects.filter(pk=s.pk).update(opened_at=opened, closed_at=opened + dt.timedelta(seconds=90))
    s.refresh_from_db()
    return s


def test_sessions_are_listed_to_the_owner_and_auditors_with_replay_for_recorded_ones(client, people, ws):
    recorded = _session(
        ws, people["alice"], recorded=True, recording=CAST, bytes_in=12, bytes_out=3456, close_reason="shell exited"
    )
    plain = _session(ws, people["alice"], recorded=False, bytes_in=1, bytes_out=2)
    for who in ("alice", "erin", "bob", "admin"):
        html = detail(client, people[who], ws)
        assert "Terminal sessions" in html, who
        assert f'data-session="{recorded.pk}"' in html and f'data-session="{plain.pk}"' in html
        assert "12 / 3456" in html and "90 s" in html and "shell exited" in html
        assert html.count("data-replay-url=") == 1  # the recorded one only
        assert f'data-replay-url="/api/v1/terminal-sessions/{recorded.pk}/recording/"' in html
        assert "/static/goldpath/replay.js" in html
        assert CAST.splitlines()[1] not in html  # the recording is fetched on demand, never inlined
    # her manager sees the workspace but not its terminal sessions (not an audit reader)
    html = detail(client, people["carol"], ws)
    assert "Terminal sessions" not in html and str(recorded.pk) not in html


def test_no_sessions_yet(client, people, ws):
    assert "No terminal sessions yet." in detail(client, people["alice"], ws)
    assert "/static/goldpath/replay.js" not in detail(client, people["alice"], ws)


def test_session_selector_restricts(people, ws):
    s = _session(ws, people["alice"], recorded=True, recording=CAST)
    assert list(terminal_sessions_for(people["alice"], ws)) == [s]
    assert list(terminal_sessions_for(people["erin"], ws)) == [s]
    for who in ("dave", "carol"):
        assert not terminal_sessions_for(people[who], ws).exists()
        assert not visible_terminal_sessions(people[who]).exists()
    assert list(visible_terminal_sessions(people["bob"])) == [s]


@pytest.mark.urls("tests.ui_prefixed_urls")
def test_under_a_host_prefix_the_socket_and_recordings_follow_it(client, people, ws):
    _session(ws, people["alice"], recorded=True, recording=CAST)
    r = page(client, people["alice"], ws)
    assert r.status_code == 200
    assert f'data-ws-path="/portal/goldpath/api/v1/workspaces/{ws.pk}/terminal/"' in r.content.decode()
    html = detail(client, people["alice"], ws)
    assert 'data-replay-url="/portal/goldpath/api/v1/terminal-sessions/' in html
    assert f'href="/portal/goldpath/workspaces/{ws.pk}/terminal/"' in html
