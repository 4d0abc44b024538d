"""Agent run pages: the new-run form (policy denial shown with reasons), the group page and its live grid,
cancel, and the provenance lookup."""

from __future__ import annotations

import pytest

from catalog.models import AgentGroup
from tests.agent_helpers import demo_tool, make_repo

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(people, teams, tmp_path):
    demo_tool(people, teams)
    return make_repo(tmp_path / "repo")


def test_new_run_form_launches_and_shows_the_grid(client, people, world):
    client.force_login(people["alice"])
    page = client.get("/agents/")
    assert page.status_code == 200 and b"count-demo-agent" in page.content
    response = client.post(
        "/agents/",
        {
            "prompt": "Say hi",
            "repository": str(world),
            "base_ref": "HEAD",
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
    client.force_login(people["alice"])
    response = client.post("/agents/", {"prompt": "x", "repository": "relative", "count-demo-agent": "1"})
    assert response.status_code == 400 and b"absolute path" in response.content
    response = client.post(
        "/agents/", {"prompt": "x", "repository": str(world), "count-demo-agent": "1", "classification": "restricted"}
    )
    assert response.status_code == 403 and b"deny-reasons" in response.content
    assert AgentGroup.objects.count() == 0


def test_provenance_page_without_a_record(client, people):
    client.force_login(people["erin"])
    page = client.get("/provenance/?commit=abcdef1234")
    assert page.status_code == 200 and b"not made by an agent run" in page.content
