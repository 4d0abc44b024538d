"""Agent run pages: the new-run form (policy denial shown with reasons), the group page and its live grid,
cancel, and the provenance lookup."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from catalog.models import AgentGroup
from catalog.services import agent_groups, agent_runs
from tests.agent_helpers import change_diff, demo_tool, finish_run, make_repo, register, worker_accepts

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(people, teams, tmp_path):
    demo_tool(people, teams)
    path = make_repo()
    register(path, people)
    return path


def test_new_run_form_launches_and_shows_the_grid(client, people, world):
    client.force_login(people["alice"])
    page = client.get("/agents/")
    assert page.status_code == 200 and b"count-demo-agent" in page.content
    response = client.post(
        "/agents/",
        {
            "prompt": "Say hi",
            "repository": "sample",
            "base_ref": "",
            "count-demo-agent": "3",
            "time_limit_s": "60",
        },
    )
    group = AgentGroup.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/agents/{group.pk}/"
    assert group.runs.count() == 3
    page = client.get(f"/agents/{group.pk}/").content.decode()
    assert "Say hi" in page and 'hx-trigger="every 2s"' in page and page.count('id="run-') == 3
    grid = client.get(f"/agents/{group.pk}/grid/").content.decode()
    assert grid.startswith('<div id="agent-grid"') and "Pending" in grid
    # dave (another team) does not see it
    client.force_login(people["dave"])
    assert client.get(f"/agents/{group.pk}/").status_code == 404
    client.force_login(people["alice"])
    response = client.post(f"/agents/{group.pk}/cancel/", follow=True)
    assert b"Canceled" in response.content
    assert AgentGroup.objects.get().status == "canceled"
    assert "hx-trigger" not in client.get(f"/agents/{group.pk}/grid/").content.decode()


def test_form_shows_policy_denial_and_launches_nothing(client, people, world):
    client.force_login(people["dave"])  # search holds no grant for the demo agent
    page = client.get("/agents/")
    assert b"count-demo-agent" not in page.content  # only tools the user may use are offered
    assert b'<option value="sample"' not in page.content  # nor another team's repositories
    client.force_login(people["alice"])
    page = client.get("/agents/")
    assert b'<option value="sample"' in page.content  # the registered repository is offered
    response = client.post("/agents/", {"prompt": "x", "repository": "relative", "count-demo-agent": "1"})
    assert response.status_code == 400 and b"No repository relative is registered" in response.content
    response = client.post(
        "/agents/", {"prompt": "x", "repository": "sample", "count-demo-agent": "1", "classification": "restricted"}
    )
    assert response.status_code == 403 and b"deny-reasons" in response.content
    assert AgentGroup.objects.count() == 0


def test_provenance_page_without_a_record(client, people):
    client.force_login(people["erin"])
    page = client.get("/provenance/?commit=abcdef1234")
    assert page.status_code == 200 and b"not made by an agent run" in page.content


def _launch(people, repo, count=2, who="alice"):
    return agent_groups.agent_group_create(
        actor=people[who],
        prompt="Add a greeting",
        repository="sample",
        agents=[{"tool": "demo-agent", "count": count}],
    )


def _key(html: str) -> str:
    return re.search(r'id="agent-results-key" name="results_key" value="([0-9a-f]+)"', html).group(1)


def test_results_section_follows_the_grid_without_a_reload(people, world, tmp_path):
    group = _launch(people, world)
    first, second = group.runs.order_by("index")
    alice = Client(enforce_csrf_checks=True)
    alice.force_login(people["alice"])
    page = alice.get(f"/agents/{group.pk}/").content.decode()
    assert "diffs appear here as agents finish" in page and "reload" not in page
    assert 'hx-include="#agent-results-key"' in page
    key = _key(page)
    grid = alice.get(f"/agents/{group.pk}/grid/", {"results_key": key}).content.decode()
    assert 'id="agent-results"' not in grid  # nothing changed: the grid comes alone

    # run 1 finishes with a diff: the next grid refresh brings the results section along (out of band)
    finish_run(first, diff=change_diff(world, tmp_path), test_exit_code=0, log=["thinking", "wrote GREETING.md"])
    grid = alice.get(f"/agents/{group.pk}/grid/", {"results_key": key}).content.decode()
    assert '<section class="card" id="agent-results"' in grid and 'hx-swap-oob="true"' in grid
    assert f'id="diff-{first.pk}"' in grid and "+Hello from an agent." in grid and "passed" in grid
    assert grid.count("Accept this result") == 1 and "csrfmiddlewaretoken" in grid
    assert 'hx-trigger="every 2s"' in grid  # run 2 still pending: the grid keeps polling
    assert "wrote GREETING.md" in grid
    key = _key(grid)
    assert 'id="agent-results"' not in alice.get(f"/agents/{group.pk}/grid/", {"results_key": key}).content.decode()

    # the last run fails: the group finishes, the grid and results come once more, then nothing polls
    finish_run(second, status="failed")
    assert AgentGroup.objects.get(pk=group.pk).status == "finished"
    grid = alice.get(f"/agents/{group.pk}/grid/", {"results_key": key}).content.decode()
    assert 'id="agent-results"' in grid and "hx-trigger" not in grid and "hx-get" not in grid
    assert "Cancel all runs" not in grid

    # the accept button of the refreshed section works with its CSRF token
    token = re.search(
        rf'action="/agents/{group.pk}/accept/"><input type="hidden" name="csrfmiddlewaretoken" value="([^"]+)"', grid
    ).group(1)
    assert alice.post(f"/agents/{group.pk}/accept/", {"run": first.pk}).status_code == 403  # no token: refused
    response = alice.post(f"/agents/{group.pk}/accept/", {"run": first.pk, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert "a worker is committing" in alice.get(response["Location"]).content.decode()
    worker_accepts(group)
    group.refresh_from_db()
    assert group.accept_status == "done" and len(group.accepted_commit) == 40
    results = alice.get(f"/agents/{group.pk}/results/").content.decode()
    assert "Accept this result" not in results and group.accepted_commit[:12] in results


def test_results_partial_is_for_those_who_see_the_group(client, people, world, tmp_path):
    group = _launch(people, world, count=1)
    finish_run(group.runs.get(), diff=change_diff(world, tmp_path), test_exit_code=1)
    url = f"/agents/{group.pk}/results/"
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    expected = {"alice": 200, "bob": 200, "carol": 200, "erin": 200, "admin": 200, "dave": 404, "frank": 200}
    for who, status in expected.items():
        client.force_login(people[who])
        response = client.get(url)
        assert response.status_code == status, who
        if status == 200:
            body = response.content.decode()
            assert 'id="agent-results"' in body and "failed (1)" in body
            # accept buttons only for the requester and platform engineers (the service's rule)
            assert ("Accept this result" in body) == (who in {"alice", "bob", "frank", "admin"}), who
    client.force_login(people["dave"])
    assert client.get(f"/agents/{group.pk}/grid/").status_code == 404
    client.force_login(people["alice"])
    assert client.get("/agents/999999/results/").status_code == 404


def test_grid_costs_the_same_queries_for_one_run_or_many(client, people, world):
    client.force_login(people["alice"])

    def queries(count):
        group = _launch(people, world, count=count)
        for run in group.runs.all():
            agent_runs.agent_run_log(run_id=run.pk, lines=[("stdout", f"line {i}") for i in range(10)])
        with CaptureQueriesContext(connection) as ctx:
            grid = client.get(f"/agents/{group.pk}/grid/", {"results_key": "stale"}).content.decode()
        assert grid.count("line 9") == count and "line 3" not in grid  # the tail: the last 6 lines of each run
        return len(ctx.captured_queries)

    assert queries(1) == queries(6)


def test_a_failed_accept_may_be_tried_again(client, people, world, tmp_path):
    group = _launch(people, world, count=2)
    broken, good = group.runs.order_by("index")
    finish_run(
        broken,
        diff="diff --git a/nowhere.txt b/nowhere.txt\n--- a/nowhere.txt\n+++ b/nowhere.txt\n@@ -1 +1 @@\n-x\n+y\n",
    )
    finish_run(good, diff=change_diff(world, tmp_path))
    client.force_login(people["alice"])
    client.post(f"/agents/{group.pk}/accept/", {"run": broken.pk})
    worker_accepts(group)
    page = client.get(f"/agents/{group.pk}/").content.decode()
    group.refresh_from_db()
    assert group.accept_error == "The run's change does not apply on its base commit. (git: apply_failed)"
    assert "does not apply on its base commit. (git: apply_failed)" in page
    assert "error: " not in page  # git's own text stays in the worker's log
    results = client.get(f"/agents/{group.pk}/results/").content.decode()
    assert "The last accept of this result failed" in results and results.count("Accept this result") == 2
    client.post(f"/agents/{group.pk}/accept/", {"run": good.pk})
    worker_accepts(group)
    group.refresh_from_db()
    assert group.accept_status == "done" and group.accepted_run_id == good.pk
