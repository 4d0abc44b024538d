"""Tool versions: add one (its launch command and egress allow-list checked) and change its egress hosts.

Egress hosts are sandbox policy (where agent runs may connect), so only platform engineers and admins set
them, on top of the tool's edit rule. Each service locks the tool, checks the role (403) and the tool's state
(409), and writes its audit event in the same transaction.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from .. import audit, permissions
from ..models import AITool, ToolStatus, ToolVersion
from ..runners.egress_policy import validate_patterns
from .errors import InvalidInput, NotPermitted, TransitionNotAllowed

S = ToolStatus


def _lock(tool: AITool) -> AITool:
    return AITool.objects.select_for_update().select_related("owner_team").get(pk=tool.pk)


def validate_launch_command(value: Any) -> list[str]:
    """An argv template: a non-empty list of strings with a {prompt} placeholder, never a shell."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise InvalidInput("Bad launch command.", errors={"launch_command": ["Give a non-empty list of argv strings."]})
    if not any("{prompt}" in v for v in value):
        raise InvalidInput("Bad launch command.", errors={"launch_command": ["One argument must contain {prompt}."]})
    shells = {"sh", "bash", "zsh", "dash", "ksh", "fish", "cmd", "powershell", "pwsh"}
    if value[0].rsplit("/", 1)[-1] in shells and any(v in ("-c", "/c", "-Command") for v in value[1:]):
        raise InvalidInput(
            "Bad launch command.",
            errors={"launch_command": ["A shell command string is not allowed; give the program's argv."]},
        )
    return value


def may_set_egress_hosts(actor: Any, tool: AITool) -> bool:
    """Egress hosts are sandbox policy (where agent runs may connect): platform engineers and admins only,
    on top of the tool's edit rule; a developer who proposed a tool may not open the network for it."""
    return permissions.is_platform(actor) and permissions.can_edit_tool(actor, tool)


def validate_egress_hosts(value: Any) -> list[str]:
    """Canonical allow-list entries (`host`, `*.suffix`, optional `:port`), or InvalidInput on egress_hosts."""
    canonical, errors = validate_patterns(value)
    if errors:
        raise InvalidInput("Bad egress hosts.", errors={"egress_hosts": errors})
    return canonical


@transaction.atomic
def tool_version_add(*, tool: AITool, actor: Any, data: dict[str, Any]) -> ToolVersion:
    tool = _lock(tool)
    if not permissions.can_add_tool_version(actor, tool):
        raise NotPermitted("Your role may not add versions to this tool.")
    if data.get("egress_hosts") and not may_set_egress_hosts(actor, tool):
        raise NotPermitted("Only platform engineers and admins may set egress hosts.")
    if tool.status in (S.RETIRED, S.BANNED):
        raise TransitionNotAllowed(f"Cannot add a version to a {tool.status} tool.")
    data = dict(data)
    data["launch_command"] = validate_launch_command(data.get("launch_command"))
    data["egress_hosts"] = validate_egress_hosts(data.get("egress_hosts") or [])
    if ToolVersion.objects.filter(tool=tool, version=data.get("version")).exists():
        raise InvalidInput("Version exists.", errors={"version": ["This version already exists for this tool."]})
    version = ToolVersion(tool=tool, created_by=actor if getattr(actor, "pk", None) else None, **data)
    try:
        version.full_clean()
    except ValidationError as exc:
        raise InvalidInput("The version is not valid.", errors=exc.message_dict) from exc
    version.save()
    audit.record(
        actor=actor,
        verb="tool.version_add",
        target=tool,
        payload={
            "version": version.version,
            "launch_command": version.launch_command,
            "models": version.model_names,
            "egress_hosts": version.egress_hosts,
        },
    )
    return version


@transaction.atomic
def tool_version_update(*, version: ToolVersion, actor: Any, egress_hosts: Any) -> ToolVersion:
    """Replace a version's egress allow-list (read when an agent run starts its sandbox; a sandbox already
    running keeps its list). Audited with before and after; an unchanged list writes nothing."""
    tool = _lock(version.tool)
    if not may_set_egress_hosts(actor, tool):
        raise NotPermitted("Only platform engineers and admins may change egress hosts.")
    version = ToolVersion.objects.select_for_update().get(pk=version.pk)
    after = validate_egress_hosts(egress_hosts)
    before = list(version.egress_hosts or [])
    if after == before:
        return version
    version.egress_hosts = after
    version.save(update_fields=["egress_hosts"])
    audit.record(
        actor=actor,
        verb="tool.version_update",
        target=tool,
        payload={"version": version.version, "changes": {"egress_hosts": [before, after]}},
    )
    return version
