"""A small organisation with something on every page, for the page-wide UI tests (labels, navigation, layout):
tools in each state, a grant, a pending access request, a repository, an accepted agent run with its signed
provenance, and usage for the adoption report. Built through services, like the demo."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from catalog.models import AccessRequest, AITool, ProvenanceRecord, ToolVersion
from catalog.services import access
from catalog.services import agent_groups as agent_services
from catalog.services.tools import tool_ban, tool_propose, tool_update
from tests.agent_helpers import change_diff, demo_tool, finish_run, make_repo, register, worker_accepts
from tests.factories import ToolFactory

LONG_PROMPT = "Refactor the payment module " + "and keep every public name stable " * 12 + "x" * 180


@dataclass
class World:
    tools: dict[str, AITool]
    request: AccessRequest
    record: ProvenanceRecord | None


def build_world(people, teams, scratch: Path, *, provenance: bool = True) -> World:
    tools = {
        "aider": ToolFactory(slug="aider", name="Aider", status="approved"),
        "cursor": ToolFactory(slug="cursor", name="Cursor", status="in_review", proposed_by=people["alice"]),
        "zed": ToolFactory(slug="zed", name="Zed", status="proposed", proposed_by=people["alice"]),
        "leaky": ToolFactory(slug="leaky", name="Leaky", status="approved"),
    }
    ToolVersion.objects.create(tool=tools["aider"], version="0.80.0", launch_command=["aider", "{prompt}"])
    # through the services, so the audit trail holds a proposal (its owner team by id) and a change of owner
    tools["cline"] = tool_propose(
        actor=people["alice"],
        data={
            "name": "Cline",
            "slug": "cline",
            "vendor": "Cline Bot",
            "kind": "agent",
            "risk_tier": "low",
            "max_data_classification": "internal",
            "owner_team": teams["platform"],
        },
    )
    tool_update(tool=tools["cline"], actor=people["alice"], data={"owner_team": teams["payments"]})
    access.grant_create(actor=people["bob"], team=teams["payments"], tool=tools["leaky"])
    tool_ban(tool=tools["leaky"], actor=people["bob"], reason="Sent code to an unknown host.")
    request = access.access_request_create(
        actor=people["alice"], tool=tools["aider"], team=teams["payments"], justification="Pairing on refactors"
    )
    record = None
    if provenance:
        demo_tool(people, teams)
        repo = make_repo()
        register(repo, people)
        group = agent_services.agent_group_create(
            actor=people["alice"], prompt=LONG_PROMPT, repository="sample", agents=[{"tool": "demo-agent", "count": 1}]
        )
        run = group.runs.get()
        finish_run(run, diff=change_diff(repo, scratch), test_exit_code=0)
        agent_services.agent_group_accept(group=group, actor=people["alice"], run=run)
        worker_accepts(group)
        record = ProvenanceRecord.objects.get(run=run)
    return World(tools=tools, request=request, record=record)
