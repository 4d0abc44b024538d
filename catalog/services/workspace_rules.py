"""What a workspace may hold: its tools as the policy decides them, and its team's quotas.

Checked by the workspace services (create, update) and again in the worker before a start build.
"""

from __future__ import annotations

from typing import Any

from ..conf import goldpath_settings
from ..models import ACTIVE_BUILD_STATUSES, AITool, Team, TeamQuota, WorkspaceBuild, WorkspaceTemplate
from ..policy import PolicyContext, decide_many
from .errors import InvalidInput, NotPermitted, QuotaExceeded


# --- parameters ---------------------------------------------------------------------------------
def resolve_tools(slugs: Any) -> list[AITool]:
    if slugs is None:
        return []
    if not isinstance(slugs, list) or not all(isinstance(s, str) for s in slugs):
        raise InvalidInput("tools must be a list of tool slugs.", errors={"tools": ["Must be a list of slugs."]})
    slugs = list(dict.fromkeys(slugs))
    tools = {t.slug: t for t in AITool.objects.filter(slug__in=slugs)}
    missing = [s for s in slugs if s not in tools]
    if missing:
        raise InvalidInput("Unknown tools.", errors={"tools": [f"Unknown tool: {s}" for s in missing]})
    return [tools[s] for s in slugs]


def policy_context(template: WorkspaceTemplate, classification: str | None = None) -> PolicyContext:
    """The policy's context for a workspace: its classification (the template's unless given) and template."""
    return PolicyContext(classification=classification or template.data_classification, template=template)


def check_policy(
    user: Any, tools: list[AITool], template: WorkspaceTemplate, classification: str | None = None
) -> None:
    decisions = decide_many(user, tools, policy_context(template, classification))
    denied = [
        {"tool": tool.slug, "reasons": [r.as_dict() for r in decisions[tool.pk].reasons]}
        for tool in tools
        if not decisions[tool.pk].allowed
    ]
    if denied:
        names = ", ".join(d["tool"] for d in denied)
        raise NotPermitted(f"The policy does not allow: {names}.", reasons=denied)


def tools_snapshot(tools: list[AITool]) -> list[dict]:
    out = []
    for tool in tools:
        version = tool.versions.order_by("-created_at").first() if hasattr(tool, "versions") else None
        out.append(
            {
                "slug": tool.slug,
                "name": tool.name,
                "version": getattr(version, "version", None),
                "launch_command": list(getattr(version, "launch_command", None) or []),
            }
        )
    return out


# --- quotas -------------------------------------------------------------------------------------
def quota_of(team: Team) -> tuple[int, int]:
    row = TeamQuota.objects.filter(team=team).first()
    max_ws = row.max_workspaces if row and row.max_workspaces is not None else goldpath_settings.DEFAULT_MAX_WORKSPACES
    max_builds = (
        row.max_concurrent_builds
        if row and row.max_concurrent_builds is not None
        else goldpath_settings.DEFAULT_MAX_CONCURRENT_BUILDS
    )
    return max_ws, max_builds


def check_build_quota(team: Team) -> None:
    _, max_builds = quota_of(team)
    active = WorkspaceBuild.objects.filter(workspace__team=team, status__in=ACTIVE_BUILD_STATUSES).count()
    if active >= max_builds:
        raise QuotaExceeded(
            f"Team {team.slug} already has {active} builds queued or running (quota: {max_builds}). "
            "Try again when one finishes."
        )
