"""SSO in a real browser (Playwright driving Debian's chromium): the login page's button, the provider's forms,
and back to the portal signed in, in the team the rules say."""

from __future__ import annotations

import pytest
from django.db import connections

from catalog.models import Team
from catalog.services import teams as team_services
from catalog.sso import rules
from tests.browser.support import BROWSER_MARKS, CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.factories import UserFactory
from tests.sso.conftest import IDP_NAME, PASSWORDS

pytestmark = BROWSER_MARKS


@pytest.fixture
def chromium_page(monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (pip) is not installed")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(15_000)
            yield context.new_page()
        finally:
            browser.close()
            connections.close_all()


def test_sign_in_with_the_provider_in_a_browser(idp, chromium_page):
    from playwright.sync_api import expect

    admin = UserFactory(username="root-admin", role="admin")
    payments = team_services.team_create(actor=admin, slug="payments", name="Payments")
    rules.sso_rule_create(actor=admin, claim_value="eng-payments", kind="member", team=payments)
    page = chromium_page
    page.goto(f"{idp.portal}/login/?next=/teams/payments/")
    page.screenshot(path=str(SCREENSHOTS / "goldpath-sso-login.png"))
    page.get_by_role("link", name=f"Sign in with {IDP_NAME}").click()
    page.get_by_label("Username").fill("priya")
    page.get_by_label("Password").fill(PASSWORDS["priya"])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{idp.portal}/teams/payments/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Payments")
    expect(page.locator("main")).to_contain_text("priya")
    page.screenshot(path=str(SCREENSHOTS / "goldpath-sso-team.png"), full_page=True)
    assert Team.objects.get(slug="payments").group.user_set.filter(username="priya").exists()

    # sam's group makes them an admin, who edits the rules in the portal
    rules.sso_rule_create(actor=admin, claim_value="platform-admins", kind="role", role="admin")
    page.get_by_role("button", name="Sign out").click()
    page = page.context.browser.new_context(viewport={"width": 1280, "height": 900}).new_page()  # the provider
    page.set_default_timeout(15_000)  # still has priya's session in the first browser: single sign-on
    page.goto(f"{idp.portal}/login/?next=/sso/mappings/")
    page.get_by_role("link", name=f"Sign in with {IDP_NAME}").click()
    page.get_by_label("Username").fill("sam")
    page.get_by_label("Password").fill(PASSWORDS["sam"])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{idp.portal}/sso/mappings/")
    page.get_by_label("Claim value").fill("eng-search")
    page.get_by_label("Portal role").check()
    page.get_by_label("Role", exact=True).select_option("auditor")
    page.get_by_role("button", name="Add rule").click()
    expect(page.locator("table")).to_contain_text("eng-search")
    page.screenshot(path=str(SCREENSHOTS / "goldpath-sso-mappings.png"), full_page=True)
