"""Pinning an agent group's runs to a tool version and a model: an exact version or `2.1.x` (the newest approved
matching it, compared numerically), only approved versions ever, a model the version allows (default: its first).
Every refusal is a 400 under `agents` and creates nothing."""

from __future__ import annotations

import pytest

from catalog.models import AgentGroup, AgentRun, AuditEvent
from catalog.services import tool_versions
from tests.agent_helpers import DEMO_ARGV, demo_tool, make_repo, register
from tests.factories import ToolVersionFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/agent-groups/"


@pytest.fixture
def tool(people, teams):
    tool = demo_tool(people, teams)  # 1.0.0, approved, no models
    for version, models, review in (
        ("2.1.3", ["claude-sonnet-4-5", "claude-opus-4-1"], "approved"),
        ("2.1.10", ["claude-sonnet-4-5"], "approved"),
        ("2.1.20", ["claude-sonnet-4-5"], "proposed"),
        ("2.0.9", ["claude-sonnet-4-5"], "rejected"),
        ("2.2.0", ["claude-sonnet-4-5"], "approved"),
    ):
        ToolVersionFactory(
            tool=tool, version=version, launch_command=DEMO_ARGV, model_names=models, review_state=review
        )
    return tool


@pytest.fixture
def repo(people):
    path = make_repo()
    register(path, people)
    return path


def launch(api, people, *agents):
    return api(people["alice"]).post(
        URL, {"prompt": "Add a greeting", "repository": "sample", "agents": list(agents)}, format="json"
    )


def counts():
    return AgentGroup.objects.count(), AgentRun.objects.count(), AuditEvent.objects.count()


def runs_of(response) -> list[tuple[str, str]]:
    group = AgentGroup.objects.get(pk=response.json()["id"])
    return [(r.tool_version.version, r.model) for r in group.runs.order_by("index")]


def test_exact_version_and_model_are_stored_per_run_and_in_the_group(api, people, tool, repo):
    r = launch(api, people, {"tool": "demo-agent", "version": "2.1.3", "model": "claude-opus-4-1", "count": 2})
    assert r.status_code == 201, r.content
    assert r.json()["agents"] == [{"tool": "demo-agent", "version": "2.1.3", "model": "claude-opus-4-1", "count": 2}]
    assert runs_of(r) == [("2.1.3", "claude-opus-4-1")] * 2
    assert [run["tool_version"] for run in r.json()["runs"]] == ["2.1.3", "2.1.3"]


def test_a_prefix_pin_takes_the_newest_approved_match_numerically(api, people, tool, repo):
    r = launch(api, people, {"tool": "demo-agent", "version": "2.1.x"})
    assert r.status_code == 201, r.content
    # 2.1.10 > 2.1.3 (numbers, not text); 2.1.20 is only proposed; the model defaults to the version's first
    assert runs_of(r) == [("2.1.10", "claude-sonnet-4-5")]
    assert r.json()["agents"][0]["version"] == "2.1.10"


def test_without_a_pin_the_newest_approved_version_runs(api, people, tool, repo):
    r = launch(api, people, {"tool": "demo-agent"})
    assert runs_of(r) == [("2.2.0", "claude-sonnet-4-5")]
    # withdrawing 2.2.0 makes 2.1.10 the newest approved
    tool_versions.tool_version_reject(
        version=tool.versions.get(version="2.2.0"), actor=people["frank"], reason="bad build"
    )
    assert runs_of(launch(api, people, {"tool": "demo-agent"})) == [("2.1.10", "claude-sonnet-4-5")]


def test_a_version_without_models_runs_with_an_empty_model(api, people, tool, repo):
    r = launch(api, people, {"tool": "demo-agent", "version": "1.0.0"})
    assert r.status_code == 201 and runs_of(r) == [("1.0.0", "")]
    assert r.json()["agents"] == [{"tool": "demo-agent", "version": "1.0.0", "model": "", "count": 1}]


def test_the_same_tool_with_two_models_side_by_side(api, people, tool, repo):
    r = launch(
        api,
        people,
        {"tool": "demo-agent", "version": "2.1.3", "model": "claude-sonnet-4-5"},
        {"tool": "demo-agent", "version": "2.1.3", "model": "claude-opus-4-1"},
    )
    assert r.status_code == 201, r.content
    assert runs_of(r) == [("2.1.3", "claude-sonnet-4-5"), ("2.1.3", "claude-opus-4-1")]
    twice = launch(api, people, {"tool": "demo-agent", "version": "2.1.3"}, {"tool": "demo-agent", "version": "2.1.3"})
    assert twice.status_code == 400 and "listed twice" in twice.json()["agents"][0]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"version": "2.1.20"}, "demo-agent 2.1.20 is proposed, not approved"),
        ({"version": "2.0.9"}, "demo-agent 2.0.9 is rejected, not approved"),
        ({"version": "7.7.7"}, "demo-agent has no version 7.7.7"),
        ({"version": "3.x"}, "demo-agent has no approved version matching 3.x"),
        ({"version": "2.0.x"}, "demo-agent has no approved version matching 2.0.x"),
        ({"version": "--registry=http://evil"}, "Give an exact version"),
        ({"version": "2.1.3", "model": "gpt-5"}, "allowed: claude-sonnet-4-5, claude-opus-4-1"),
        ({"version": "1.0.0", "model": "claude-sonnet-4-5"}, "it lists no models"),
    ],
)
def test_refusals_are_400_under_agents_and_create_nothing(api, people, tool, repo, spec, message):
    before = counts()
    r = launch(api, people, {"tool": "demo-agent", **spec}, {"tool": "demo-agent", "version": "2.1.3"})
    assert r.status_code == 400, r.content
    assert any(message in m for m in r.json()["agents"]), r.json()
    assert counts() == before


def test_a_model_not_allowed_names_the_allowed_ones(api, people, tool, repo):
    r = launch(api, people, {"tool": "demo-agent", "version": "2.1.x", "model": "claude-opus-4-1"})
    assert r.status_code == 400
    assert r.json()["agents"] == ["demo-agent 2.1.10 may not use model 'claude-opus-4-1'; allowed: claude-sonnet-4-5."]
    assert not AgentGroup.objects.exists()


def test_an_unknown_spec_field_is_400(api, people, tool, repo):
    r = launch(api, people, {"tool": "demo-agent", "argv": ["sh"]})
    assert r.status_code == 400 and "agents" in r.json()


def test_a_tool_with_no_approved_version_does_not_launch(api, people, tool, repo):
    tool.versions.update(review_state="proposed")
    before = counts()
    r = launch(api, people, {"tool": "demo-agent"})
    assert r.status_code == 400
    assert r.json()["agents"] == ["Demo agent (offline demo) has no approved version with a headless launch command."]
    assert counts() == before
