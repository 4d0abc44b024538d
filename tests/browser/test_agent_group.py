"""The agent group page in a real browser: runs finish while alice watches; the diffs appear in the results
section without a reload, polling stops when the group is done, and the accept button of the refreshed
section commits (its CSRF token is fresh)."""

from __future__ import annotations

from catalog.models import AgentGroup
from catalog.services import agent_groups as agent_services
from tests.agent_helpers import change_diff, demo_tool, finish_run, make_repo, register, worker_accepts
from tests.browser.support import BROWSER_MARKS, SCREENSHOTS, sign_in

pytestmark = BROWSER_MARKS


def test_diffs_appear_live_and_accept_works(transactional_db, live_server, people, teams, page, tmp_path):
    from playwright.sync_api import expect

    demo_tool(people, teams)
    repo = make_repo()
    register(repo, people)
    group = agent_services.agent_group_create(
        actor=people["alice"],
        prompt="Add a greeting",
        repository="sample",
        agents=[{"tool": "demo-agent", "count": 2}],
    )
    first, second = group.runs.order_by("index")
    base = live_server.url
    grid_requests: list[str] = []
    page.on("request", lambda r: grid_requests.append(r.url) if "/grid/" in r.url else None)

    sign_in(page, base, "alice")
    page.goto(f"{base}/agents/{group.pk}/")
    results = page.locator("#agent-results")
    expect(results).to_contain_text("No changes yet: diffs appear here as agents finish.")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    # run 1 finishes with a diff: it shows up in the results section by itself
    finish_run(first, diff=change_diff(repo, tmp_path), test_exit_code=0, log=["wrote GREETING.md"])
    expect(page.locator(f"#diff-{first.pk}")).to_contain_text("+Hello from an agent.", timeout=10_000)
    expect(page.locator(f"#diff-{first.pk}")).to_contain_text("passed")
    expect(page.locator(f"#run-{first.pk}")).to_contain_text("wrote GREETING.md")
    expect(page.locator("#agent-grid")).to_have_attribute("data-live", "1")

    # the last run fails: the group finishes, the page says so once more, then polling stops
    finish_run(second, status="failed")
    expect(page.locator("#agent-grid")).to_contain_text("Finished", timeout=10_000)
    expect(page.locator("#agent-grid")).to_have_attribute("data-live", "0")
    expect(page.get_by_role("button", name="Cancel all runs")).to_have_count(0)
    assert page.evaluate("window.__sameDocument === true")
    page.screenshot(path=str(SCREENSHOTS / "goldpath-agent-group.png"), full_page=True)
    seen = len(grid_requests)
    page.wait_for_timeout(4_500)
    assert len(grid_requests) == seen, "the grid still polls after the group finished"

    # the accept button that arrived with the refresh works (CSRF included)
    page.locator(f"#diff-{first.pk}").get_by_role("button", name="Accept this result").click()
    expect(page.locator(".messages")).to_contain_text("a worker is committing")
    worker_accepts(group)  # what the accept task does (this test runs no worker; the integration tests do)
    group = AgentGroup.objects.get(pk=group.pk)
    assert group.accept_status == "done" and group.accepted_run_id == first.pk
    page.reload()
    expect(page.locator(f"#diff-{first.pk}")).to_contain_text(group.accepted_commit[:12])
