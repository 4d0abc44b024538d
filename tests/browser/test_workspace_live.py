"""The workspace page in a real browser, following a real build (a real worker, real Terraform): the status
badge, the builds table, the buttons and the outputs change while alice watches, without a reload; each log line
shows once; polling stops when the build has ended; Stop then follows the same way to Stopped."""

from __future__ import annotations

import pytest

from catalog.services import templates as template_services
from catalog.services import workspaces as ws_services
from tests.browser.support import BROWSER_MARKS, SCREENSHOTS, sign_in
from tests.conftest import require_binary
from tests.tf.templates import ECHO
from tests.workspace_helpers import sample_repository

pytestmark = [*BROWSER_MARKS, pytest.mark.integration]


def publish_echo():
    template = template_services.template_create(actor=None, slug="echo", name="Echo")
    version, _ = template_services.template_version_create(template=template, actor=None, files=ECHO)
    template_services.validate_and_publish(version.pk)
    version.refresh_from_db()
    assert version.status == "published", version.diagnostics
    template_services.template_version_activate(version=version, actor=None)
    template.refresh_from_db()
    return template


def test_status_builds_and_buttons_follow_the_build_live(celery_worker, live_server, people, teams, page):
    from playwright.sync_api import expect

    require_binary("terraform", "Terraform")
    template = publish_echo()
    sample_repository(people)
    base = live_server.url
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/log?" in r.url else None)
    sign_in(page, base, "alice")

    ws = ws_services.workspace_create(
        actor=people["alice"], name="dev", template=template, parameters={"repository": "sample", "sleep_s": 3}
    )
    page.goto(f"{base}/workspaces/{ws.pk}/")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    assert page.locator("#ws-status").inner_text() in ("Pending", "Starting")
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)

    expect(page.locator("#ws-status")).to_have_text("Running", timeout=60_000)
    expect(page.locator("#ws-builds tbody tr").first).to_contain_text("succeeded")
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    expect(page.get_by_role("link", name="Edit parameters")).to_be_visible()
    expect(page.locator("#ws-outputs")).to_contain_text("ws-test")
    expect(page.locator("#build-log")).to_contain_text("terraform apply finished")
    expect(page.locator("#log-poller")).to_have_attribute("data-live", "0")
    assert page.evaluate("window.__sameDocument === true")
    lines = page.locator("#build-log span").all_inner_texts()
    build = ws.builds.get()
    stored = [f"[{line.stage}] {line.text}" for line in build.log_lines.order_by("seq")]
    assert lines == stored  # each line once, in order (Terraform itself says "Outputs: 2" twice)
    assert not any(mark in "".join(lines) for mark in ("╷", "╵", "CLI configuration"))
    page.screenshot(path=str(SCREENSHOTS / "goldpath-workspace-live.png"), full_page=True)
    seen = len(polls)
    assert seen > 0
    page.wait_for_timeout(3_000)
    assert len(polls) == seen, "the page still polls after the build ended"

    # Stop: the page reloads once (the form's redirect), then follows the stop build to Stopped by itself
    page.get_by_role("button", name="Stop").click()
    page.wait_for_load_state()
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#ws-status")).to_have_text("Stopped", timeout=60_000)
    expect(page.get_by_role("button", name="Start")).to_be_visible()
    expect(page.locator("#ws-builds tbody tr").first).to_contain_text("succeeded")
    assert page.evaluate("window.__sameDocument === true")


def test_a_platform_engineer_validates_publishes_and_activates_on_the_template_page(
    celery_worker, live_server, people, teams, page
):
    from playwright.sync_api import expect

    from tests.tf.templates import BROKEN

    require_binary("terraform", "Terraform")
    template = template_services.template_create(actor=people["bob"], slug="echo", name="Echo")
    template_services.template_version_create(template=template, actor=people["bob"], files=ECHO)
    template_services.template_version_create(template=template, actor=people["bob"], files=BROKEN)
    base = live_server.url
    sign_in(page, base, "bob")
    page.goto(f"{base}/golden-paths/echo/")
    broken, good = page.locator("#version-2"), page.locator("#version-1")

    broken.get_by_role("button", name="Validate v2").click()
    expect(page.locator(".messages")).to_contain_text("Validation of v2 requested")
    expect(broken).to_contain_text("Not valid", timeout=30_000)  # the worker's answer, polled in
    expect(broken).to_contain_text('An input variable with the name "missing" has not been declared.')
    expect(page.locator("#template-versions")).to_have_attribute("data-live", "0")

    good.get_by_role("button", name="Publish v1").click()
    expect(good.get_by_role("button", name="Activate v1")).to_be_visible(timeout=30_000)
    expect(good).to_contain_text("Published")
    good.get_by_role("button", name="Activate v1").click()
    expect(page.locator(".messages")).to_contain_text("v1 is now the active version.")
    expect(good).to_contain_text("active")
    expect(page.get_by_role("link", name="Create a workspace")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "goldpath-template-versions.png"), full_page=True)
