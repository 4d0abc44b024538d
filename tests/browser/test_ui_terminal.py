"""The terminal in a real browser: xterm.js (vendored) on the terminal page, typing into a real workspace's shell
through the portal's WebSocket (needs the `running_terminal_workspace` fixture: an ASGI live server, a worker and
a running local-sandbox workspace with its agent), copy and paste, and the replay of a recorded session on the
workspace page (needs only a recorded TerminalSession row and the recording API)."""

from __future__ import annotations

import re

import pytest

from catalog.models import TerminalSession
from tests.browser.support import BROWSER_MARKS, SCREENSHOTS, sign_in
from tests.factories import PASSWORD
from tests.workspace_helpers import running_workspace

pytestmark = BROWSER_MARKS

CAST = (
    "\n".join(
        [
            '{"version": 2, "width": 80, "height": 24, "timestamp": 1700000000, "env": {"TERM": "xterm-256color"}}',
            '[0.05, "o", "$ "]',
            '[0.30, "o", "echo recorded-$((6*7))\\r\\n"]',
            '[0.60, "o", "recorded-42\\r\\n"]',
            '[0.70, "r", "100x30"]',
            '[1.20, "o", "$ exit\\r\\nthe end of the recording\\r\\n"]',
        ]
    )
    + "\n"
)


def rows(page) -> str:
    """What the terminal shows (xterm.js renders its rows in the DOM)."""
    return page.locator(".xterm-rows").first.inner_text()


def log_in(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")


# --- needs no terminal backend ------------------------------------------------------------------
def test_terminal_page_renders_xterm_and_reports_a_socket_it_cannot_open(live_server, people, teams, page):
    """The WSGI live server speaks no WebSocket: the page says the connection was lost, retries, offers Reconnect."""
    from playwright.sync_api import expect

    ws = running_workspace(people, teams)
    sign_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/workspaces/{ws.pk}/")
    page.get_by_role("link", name="Terminal").click()
    page.wait_for_url(f"{live_server.url}/workspaces/{ws.pk}/terminal/")
    expect(page.locator(".xterm-screen")).to_be_visible()  # xterm.js loaded from /static, nothing from a CDN
    status = page.locator("#term-status")
    expect(status).to_have_attribute("data-state", "closed")
    expect(status).to_contain_text("Connection lost")
    expect(status).to_contain_text("Reconnecting in")
    expect(page.get_by_role("button", name="Reconnect")).to_be_visible()
    page.get_by_role("button", name="Reconnect").click()
    expect(status).to_contain_text(re.compile("Reconnecting|Connection lost"))


def test_replay_plays_a_recorded_session_with_its_timing(live_server, people, teams, page):
    """An auditor opens the workspace page, clicks Replay: the recording plays in xterm.js, pauses, speeds up."""
    from playwright.sync_api import expect

    ws = running_workspace(people, teams)
    session = TerminalSession.objects.create(
        workspace=ws, user=people["alice"], recorded=True, recording=CAST, bytes_in=20, bytes_out=80
    )
    TerminalSession.objects.filter(pk=session.pk).update(closed_at=session.opened_at)
    sign_in(page, live_server.url, "erin")
    page.goto(f"{live_server.url}/workspaces/{ws.pk}/")
    row = page.locator(f'tr[data-session="{session.pk}"]')
    expect(row).to_contain_text("alice")
    row.get_by_role("button", name="Replay").click()
    player = page.locator("#replay")
    expect(player).to_be_visible()
    state = player.locator("[data-replay-state]")
    expect(state).to_have_attribute("data-state", "playing")
    expect(player.locator(".xterm-rows")).to_contain_text("recorded-42", timeout=5_000)
    expect(state).to_have_attribute("data-state", "ended", timeout=5_000)
    expect(player.locator(".xterm-rows")).to_contain_text("the end of the recording")
    page.screenshot(path=str(SCREENSHOTS / "goldpath-terminal-replay.png"), full_page=True)

    # again, at x4, paused half-way: the text after the pause point is not there yet
    player.get_by_role("button", name="Replay again").click()
    player.get_by_role("button", name="x4").click()
    expect(state).to_contain_text("x4")
    expect(player.locator(".xterm-rows")).to_contain_text("recorded-42", timeout=5_000)
    player.get_by_role("button", name="Pause").click()
    expect(state).to_have_attribute("data-state", re.compile("paused|ended"))
    if state.get_attribute("data-state") == "paused":
        page.wait_for_timeout(600)
        assert "the end of the recording" not in player.locator(".xterm-rows").inner_text()
        player.get_by_role("button", name="Play").click()
    expect(player.locator(".xterm-rows")).to_contain_text("the end of the recording", timeout=5_000)


# --- needs the terminal backend -----------------------------------------------------------------
@pytest.mark.integration
def test_typing_into_xterm_runs_in_the_workspace(running_terminal_workspace, page):
    from playwright.sync_api import expect

    base, ws, username, password = running_terminal_workspace
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    log_in(page, base, username, password or PASSWORD)
    page.goto(f"{base}/workspaces/{ws.pk}/")
    page.get_by_role("link", name="Terminal").click()
    status = page.locator("#term-status")
    expect(status).to_have_attribute("data-state", "connected", timeout=30_000)
    expect(page.get_by_role("button", name="Reconnect")).to_be_hidden()

    page.locator(".xterm-screen").click()
    page.keyboard.type("echo answer-$((6*7))\n")
    expect(page.locator(".xterm-rows")).to_contain_text("answer-42", timeout=15_000)
    page.keyboard.type("id -u\n")
    page.keyboard.type("echo uid-is-$(id -u)\n")
    expect(page.locator(".xterm-rows")).to_contain_text(re.compile(r"uid-is-[1-9][0-9]*"))
    assert "uid-is-0" not in rows(page)

    # resizing the window resizes the PTY (FitAddon, then a resize message)
    page.keyboard.type("clear; echo size-$(stty size | tr ' ' x)\n")
    expect(page.locator(".xterm-rows")).to_contain_text(re.compile(r"size-\d+x\d+"))
    before = re.search(r"size-(\d+x\d+)", rows(page)).group(1)
    page.set_viewport_size({"width": 900, "height": 600})
    page.wait_for_timeout(400)
    page.keyboard.type("clear; echo size-$(stty size | tr ' ' x)\n")
    expect(page.locator(".xterm-rows")).not_to_contain_text(f"size-{before}")
    expect(page.locator(".xterm-rows")).to_contain_text(re.compile(r"size-\d+x\d+"))

    # copy (Ctrl+Shift+C) and paste (the Paste button reads the clipboard)
    page.evaluate("window.goldpathTerminal.term.selectAll()")
    page.keyboard.press("Control+Shift+C")
    page.wait_for_function("navigator.clipboard.readText().then(t => t.includes('size-'))")
    page.evaluate("navigator.clipboard.writeText('echo pasted-$((40+2))')")
    page.get_by_role("button", name="Paste").click()
    # the clipboard is read asynchronously; once the pasted line shows, the terminal has the focus back
    expect(page.locator(".xterm-rows")).to_contain_text("echo pasted-$((40+2))")
    page.keyboard.press("Enter")
    expect(page.locator(".xterm-rows")).to_contain_text("pasted-42")
    page.screenshot(path=str(SCREENSHOTS / "goldpath-terminal.png"), full_page=True)

    # the shell exits: the session ends normally and the page does not reconnect
    page.keyboard.type("exit\n")
    expect(status).to_have_attribute("data-state", "closed", timeout=15_000)
    expect(status).to_contain_text("Session ended")
    page.wait_for_timeout(1500)
    expect(status).not_to_contain_text("Reconnecting")
    expect(page.get_by_role("button", name="Reconnect")).to_be_visible()
