"""The catalog in a real browser (Playwright driving Debian's chromium) against a live server:
alice finds a tool and proposes one, bob approves it from the review queue, erin sees it in the audit log."""

from __future__ import annotations

import re

from catalog.models import AITool, AuditEvent
from tests.browser.support import BROWSER_MARKS, SCREENSHOTS, sign_in, sign_out
from tests.factories import ToolFactory

pytestmark = BROWSER_MARKS


def test_propose_review_approve_audit(transactional_db, live_server, people, page):
    from playwright.sync_api import expect

    ToolFactory(slug="aider", name="Aider", vendor="Aider", kind="cli", status="approved")
    ToolFactory(slug="cursor", name="Cursor", vendor="Anysphere", kind="ide", status="in_review")
    base = live_server.url

    # alice finds a tool with the search box (htmx refreshes the results as she types)
    sign_in(page, base, "alice")
    expect(page.locator("#tool-results")).to_contain_text("Cursor")
    page.get_by_role("searchbox").fill("aider")
    expect(page.locator("#tool-results")).not_to_contain_text("Cursor")
    expect(page.locator("#tool-results")).to_contain_text("Aider")
    expect(page).to_have_url(re.compile(r"\?.*q=aider"))
    page.screenshot(path=str(SCREENSHOTS / "goldpath-catalog.png"), full_page=True)
    page.get_by_role("link", name="Aider", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Aider")

    # ... proposes a new tool; a field error first, then the complete form
    page.goto(f"{base}/")
    page.get_by_role("link", name="Propose a tool").click()
    page.get_by_label(re.compile(r"^Name\b")).fill("Zed AI")
    page.get_by_label(re.compile(r"^Slug\b")).fill("Zed AI!")
    page.get_by_role("button", name="Propose tool").click()
    expect(page.locator(".errorlist").first).to_be_visible()
    page.get_by_label(re.compile(r"^Slug\b")).fill("zed-ai")
    page.get_by_label("Vendor").fill("Zed Industries")
    page.get_by_label("Kind").select_option("ide")
    page.get_by_label("Risk tier").select_option("medium")
    page.get_by_label("Highest data classification").select_option("internal")
    page.get_by_label("Homepage").fill("https://zed.dev")
    page.get_by_role("button", name="Propose tool").click()
    page.wait_for_url(f"{base}/tools/zed-ai/")
    expect(page.locator("#tool-status")).to_have_text("Proposed")

    # ... and sends it to review
    page.get_by_role("button", name="Send to review").click()
    expect(page.locator("#tool-status")).to_have_text("In review")
    expect(page.locator(".messages")).to_contain_text("Zed AI is now in review.")
    sign_out(page)

    # bob opens the review queue and approves it inline, with a reason
    sign_in(page, base, "bob")
    page.locator("nav details[data-nav-menu] summary").click()  # the Governance menu
    page.get_by_role("link", name="Review queue").click()
    row = page.locator("#review-zed-ai")
    expect(row).to_contain_text("alice")
    row.get_by_role("button", name="Approve").click()  # no reason: the browser asks for one, nothing is sent
    assert row.get_by_label("Reason for Zed AI").evaluate("e => !e.validity.valid")
    page.wait_for_timeout(300)
    expect(row).not_to_contain_text("Give a reason")
    assert AITool.objects.get(slug="zed-ai").status == "in_review"
    row.get_by_label("Reason for Zed AI").fill("Local-first editor; DPA signed.")
    row.get_by_role("button", name="Approve").click()
    expect(page.locator("#review-zed-ai")).to_contain_text("Zed AI is now approved.")
    expect(page.locator("#review-zed-ai .badge[class*='status-']")).to_have_text("Approved")

    # the tool shows approved, with bob's decision in its history
    page.goto(f"{base}/tools/zed-ai/")
    expect(page.locator("#tool-status")).to_have_text("Approved")
    expect(page.get_by_role("region", name="Decision history")).to_contain_text("Local-first editor; DPA signed.")
    page.screenshot(path=str(SCREENSHOTS / "goldpath-tool.png"), full_page=True)
    sign_out(page)

    # erin, the auditor, finds bob's approval in the audit log
    sign_in(page, base, "erin")
    page.locator("nav details[data-nav-menu] summary").click()
    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Verb").fill("tool.approved")
    page.get_by_role("button", name="Filter").click()
    first = page.locator("table.table tbody tr").first
    expect(first).to_contain_text("bob")
    expect(first).to_contain_text("zed-ai")
    expect(first).to_contain_text("Local-first editor; DPA signed.")
    event = AuditEvent.objects.get(verb="tool.approved", target_repr="zed-ai")
    assert event.actor_repr == "bob" and event.payload["to"] == "approved"
