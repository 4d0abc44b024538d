"""Layout at a 1280 px laptop screen, in chromium (issue 14): the navigation stays on one line for every role,
the Governance menu opens over the page (without JavaScript too: it is a <details>) and closes on Escape; the
provenance page keeps long hashes and prompts inside their boxes; the new-team form is laid out; the adoption
report draws the funnel in counts and marks the current week as partial."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from catalog.demo import USERS
from tests.browser.support import BROWSER_MARKS, SCREENSHOTS, sign_in
from tests.ui_world import build_world

pytestmark = BROWSER_MARKS
ROLES = ("alice", "carol", "erin", "bob", "admin")

ROW_TOPS = """() => {
  const header = document.querySelector("header.topbar");
  const items = [header.querySelector(".brand"), ...header.querySelectorAll("nav > a, nav > details > summary"),
                 header.querySelector(".who")];
  const boxes = items.map(e => e.getBoundingClientRect());
  return {
    header: header.getBoundingClientRect().height,
    centers: boxes.map(b => Math.round(b.top + b.height / 2)),
    rightmost: Math.max(...boxes.map(b => b.right)),
    labels: items.map(e => e.textContent.trim().split(/\\s+/).join(" ")),
  };
}"""

OVERFLOW = """() => {
  const page = document.documentElement;
  const wide = [...document.querySelectorAll("main .card")].filter(c => c.scrollWidth > c.clientWidth + 1);
  return {page: page.scrollWidth - page.clientWidth, cards: wide.map(c => c.id || c.className)};
}"""


@pytest.fixture
def named_people(people):
    """The demo's full names (the header shows them), so the widths are the real ones."""
    for username, _role, _member, _managed, full_name in USERS:
        if username in people:
            first, _, last = full_name.partition(" ")
            people[username].first_name, people[username].last_name = first, last
            people[username].save(update_fields=["first_name", "last_name"])
    return people


@pytest.fixture
def laptop(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.mark.parametrize("username", ROLES)
def test_the_navigation_is_one_line_at_1280_px(transactional_db, live_server, named_people, laptop, username):
    from playwright.sync_api import expect

    page = laptop
    sign_in(page, live_server.url, username)
    for path in ("/", "/reports/adoption/", "/authz/simulator/"):
        page.goto(f"{live_server.url}{path}")
        if path != "/" and username == "alice" and "adoption" in path:
            continue
        m = page.evaluate(ROW_TOPS)
        assert max(m["centers"]) - min(m["centers"]) <= 4, (username, path, m)
        assert m["header"] <= 64 and m["rightmost"] <= 1280, (username, path, m)
    page.goto(f"{live_server.url}/")
    page.screenshot(path=str(SCREENSHOTS / f"goldpath-nav-{username}.png"))

    # the Governance menu opens over the page, holds the simulator and out-of-policy pages, closes on Escape
    menu = page.locator("nav details[data-nav-menu]")
    before = page.evaluate(ROW_TOPS)["header"]
    menu.locator("summary").click()
    expect(menu.get_by_role("link", name="Policy simulator")).to_be_visible()
    expect(menu.get_by_role("link", name="Out of policy")).to_be_visible()
    expect(menu.get_by_role("link", name="Review queue")).to_have_count(1 if username in ("bob", "admin") else 0)
    assert page.evaluate(ROW_TOPS)["header"] == before  # over the page, not in the header's flow
    page.keyboard.press("Escape")
    expect(menu.get_by_role("link", name="Policy simulator")).to_be_hidden()
    menu.locator("summary").click()
    menu.get_by_role("link", name="Policy simulator").click()
    page.wait_for_url(f"{live_server.url}/authz/simulator/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Policy simulator")


def test_the_governance_menu_works_without_javascript(transactional_db, live_server, people, browser):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 800}, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, live_server.url, "erin")
        page.locator("nav details[data-nav-menu] summary").click()
        page.get_by_role("link", name="Audit log").click()
        page.wait_for_url(f"{live_server.url}/audit/")
        expect(page.get_by_role("heading", level=1)).to_contain_text("Audit log")
    finally:
        context.close()


def test_the_provenance_page_fits_1280_px(transactional_db, live_server, people, teams, laptop, tmp_path):
    from playwright.sync_api import expect

    world = build_world(people, teams, tmp_path)
    sign_in(laptop, live_server.url, "erin")
    laptop.goto(f"{live_server.url}/provenance/?commit={world.record.commit_sha}")
    expect(laptop.locator(".provenance-record")).to_contain_text(world.record.commit_sha)
    expect(laptop.locator(".provenance-record")).to_contain_text("verified")
    overflow = laptop.evaluate(OVERFLOW)
    assert overflow == {"page": 0, "cards": []}, overflow
    # the full commit and the prompt's digest are readable, wrapped inside the card
    card = laptop.locator(".provenance-record").bounding_box()
    for text in (world.record.commit_sha, world.record.group.prompt_sha256):
        box = laptop.get_by_text(text, exact=True).first.bounding_box()
        assert box["x"] >= card["x"] and box["x"] + box["width"] <= card["x"] + card["width"] + 1, text
    laptop.screenshot(path=str(SCREENSHOTS / "goldpath-provenance.png"), full_page=True)


def test_the_new_team_form_is_laid_out(transactional_db, live_server, people, laptop):
    from playwright.sync_api import expect

    sign_in(laptop, live_server.url, "admin")
    laptop.goto(f"{live_server.url}/teams/")
    form = laptop.locator("form", has=laptop.get_by_role("button", name="Create team"))
    name = form.get_by_label("Name")
    description = form.get_by_label("Description")
    # stacked form fields: the label above its box, boxes as wide as their column, like every other form
    assert name.bounding_box()["width"] >= 250 and description.bounding_box()["width"] >= 500
    assert form.locator("label[for=id_name]").bounding_box()["y"] < name.bounding_box()["y"]
    name.fill("Data platform")
    form.get_by_label("Slug").fill("Not a slug!")
    form.get_by_role("button", name="Create team").click()
    expect(laptop.locator(".field.has-error")).to_have_count(1)
    expect(laptop.get_by_role("alert").first).to_be_visible()
    form.get_by_label("Slug").fill("data-platform")
    form.get_by_role("button", name="Create team").click()
    expect(laptop.get_by_role("heading", level=1)).to_have_text("Data platform")


def test_the_funnel_is_in_counts_and_the_current_week_is_partial(transactional_db, live_server, people, laptop):
    from playwright.sync_api import expect

    from catalog.reports.rollup import rollup_usage
    from catalog.usage import record_usage
    from tests.factories import ToolFactory

    tool = ToolFactory(slug="aider", name="Aider", status="approved")
    for days_ago in (20, 9, 1, 0):
        when = timezone.now() - dt.timedelta(days=days_ago)
        record_usage("agent_run_started", user=people["alice"], tool=tool, at=when, key=f"run:{days_ago}")
    rollup_usage()

    sign_in(laptop, live_server.url, "erin")
    laptop.goto(f"{live_server.url}/reports/adoption/?granularity=week")
    expect(laptop.locator("#partial-note")).to_contain_text("Partial week")
    chart = laptop.evaluate(
        """() => {
          const tools = Chart.getChart("chart-tools"), funnel = Chart.getChart("chart-funnel");
          return {labels: tools.data.labels, funnelAxis: funnel.options.scales.x.title.text,
                  funnelSets: funnel.data.datasets.length, funnelLabels: funnel.data.labels};
        }"""
    )
    assert chart["labels"][-1].endswith("(partial)") and not any(
        label.endswith("(partial)") for label in chart["labels"][:-1]
    )
    assert chart["funnelAxis"] == "count" and chart["funnelSets"] == 1
    assert chart["funnelLabels"] == ["Access requested", "Access granted", "First use", "Agent result accepted"]
    expect(laptop.locator(".funnel-table")).to_contain_text("team and tool pairs used for the first time")
    laptop.screenshot(path=str(SCREENSHOTS / "goldpath-adoption.png"), full_page=True)
