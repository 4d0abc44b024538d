"""htmx forms show every refusal (issue 14): htmx drops 4xx answers by default, so a refused form left the old
result on screen and said nothing. Now a refusal rendered as a fragment (the form or row with its errors) is
swapped in, and any other answer (a whole error page, a CSRF failure) leaves a message and marks what is out of
date. Driven in chromium against the live server."""

from __future__ import annotations

import re

from catalog.models import AccessRequest, AITool, Profile
from catalog.services import access
from catalog.services.tools import tool_ban
from tests.browser.support import BROWSER_MARKS, sign_in
from tests.factories import ToolFactory

pytestmark = BROWSER_MARKS


def test_the_simulator_replaces_its_result_with_the_refusal(transactional_db, live_server, people, teams, page):
    from playwright.sync_api import expect

    ToolFactory(slug="aider", name="Aider", status="approved")
    sign_in(page, live_server.url, "bob")
    page.goto(f"{live_server.url}/authz/simulator/")
    result = page.locator("#simulator-result")
    page.get_by_label("User").fill("alice")
    page.get_by_label("Tool").select_option("aider")
    page.get_by_role("button", name="Check").click()
    expect(result).to_contain_text("alice · Aider")
    expect(result).to_contain_text("denied")
    # a user who does not exist: a 400 with the message, in place of the answer about alice
    page.get_by_label("User").fill("nobody")
    page.get_by_role("button", name="Check").click()
    expect(result).to_contain_text(re.compile(r"no (such )?user", re.IGNORECASE))
    expect(result).not_to_contain_text("alice · Aider")


def test_a_refused_access_request_says_why_in_the_panel(transactional_db, live_server, people, teams, page):
    from playwright.sync_api import expect

    tool = ToolFactory(slug="aider", name="Aider", status="approved")
    sign_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/tools/aider/")
    panel = page.locator("#access-panel-aider")
    expect(panel.get_by_role("button", name="Request access")).to_be_visible()
    tool_ban(tool=tool, actor=people["bob"], reason="Leaked code.")  # while alice writes her justification
    panel.get_by_label("Why does the team need it?").fill("Pairing on refactors")
    panel.get_by_role("button", name="Request access").click()
    expect(page.locator("#access-panel-aider [role=alert]")).to_contain_text(
        "access can be requested only for approved tools"
    )
    expect(page.locator("#access-panel-aider")).to_contain_text("Tool banned")
    expect(page.locator("#access-panel-aider").get_by_role("button", name="Request access")).to_have_count(0)
    assert not AccessRequest.objects.exists()


def test_a_whole_error_page_becomes_a_message(transactional_db, live_server, people, teams, page):
    """bob loses his platform role while the queue is open: the 403 page is not pasted into the row; a message
    says why and the row is marked out of date."""
    from playwright.sync_api import expect

    tool = ToolFactory(slug="aider", name="Aider", status="approved")
    req = access.access_request_create(actor=people["alice"], tool=tool, team=teams["payments"], justification="x")
    sign_in(page, live_server.url, "bob")
    page.goto(f"{live_server.url}/access-requests/")
    row = page.locator(f"#access-request-{req.pk}")
    expect(row.get_by_role("button", name="Approve")).to_be_visible()
    Profile.objects.filter(user=people["bob"]).update(role="auditor")
    row.get_by_role("button", name="Approve").click()
    alert = page.locator(".messages li.error")
    expect(alert).to_contain_text("Not allowed. Only platform engineers decide access requests.")
    expect(row).to_have_class("gp-stale")
    expect(page.locator("main .card")).not_to_contain_text("Back to the catalog")
    assert AccessRequest.objects.get().status == "pending"


def test_a_csrf_failure_after_signing_in_again_elsewhere_is_reported(
    transactional_db, live_server, people, teams, page
):
    from playwright.sync_api import expect

    ToolFactory(slug="aider", name="Aider", status="approved")
    sign_in(page, live_server.url, "bob")
    page.goto(f"{live_server.url}/authz/simulator/")
    other = page.context.new_page()  # another tab: signing in again rotates the CSRF token
    other.goto(f"{live_server.url}/login/")
    other.get_by_label("Username").fill("bob")
    from tests.factories import PASSWORD

    other.get_by_label("Password").fill(PASSWORD)
    other.get_by_role("button", name="Sign in").click()
    other.wait_for_url(f"{live_server.url}/")
    other.close()
    page.get_by_label("User").fill("alice")
    page.get_by_role("button", name="Check").click()
    expect(page.locator(".messages li.error")).to_contain_text("Not allowed.")
    expect(page.locator(".messages li.error")).to_contain_text("out of date, so nothing was changed")
    assert AITool.objects.count() == 1


def test_an_ended_session_leads_to_the_sign_in_page_and_back(transactional_db, live_server, people, teams, page):
    """The session ends while a page is open: the next htmx request is redirected to the sign-in page, which is
    shown as a page (not inside the panel), and signing in comes back to the page."""
    from playwright.sync_api import expect

    from tests.factories import PASSWORD

    ToolFactory(slug="aider", name="Aider", status="approved")
    sign_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/tools/aider/")
    page.context.clear_cookies()
    page.get_by_label("Data classification").select_option("restricted")
    page.wait_for_url(re.compile(r"/login/\?next=%2Ftools%2Faider%2F$"))
    expect(page.locator("#access-panel-aider")).to_have_count(0)
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/tools/aider/")
    expect(page.locator("#access-panel-aider")).to_contain_text("Can I use Aider?")
