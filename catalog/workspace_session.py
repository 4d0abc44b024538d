"""What a start build hands a workspace's session: the agent's link and the tools inside.

The agent's link is a URL and a fresh token; the tools are H2's catalog.services.workspace_tools (runtimes,
gateway base URL and the per-workspace gateway key).

The template receives it as the sensitive variable `goldpath_session` (JSON) and writes it 0600 for the session
supervisor (catalog.workspace_host), which reads and removes it; `goldpath_agent_launch` is the supervisor's argv.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.urls import reverse

from .conf import goldpath_settings
from .models import Transition, Workspace, WorkspaceBuild
from .services import workspace_tools
from .terminals import services as terminal_services


def web_base_url() -> str:
    """The web tier as workspaces reach it: AGENT_URL, else GATEWAY_URL, else PORTAL_URL."""
    return str(goldpath_settings.AGENT_URL or goldpath_settings.GATEWAY_URL or goldpath_settings.PORTAL_URL).rstrip("/")


def agent_url(workspace: Workspace) -> str:
    base = web_base_url()
    scheme, _, rest = base.partition("://")
    ws_scheme = "wss" if scheme == "https" else "ws"
    authority = rest.split("/", 1)[0]
    return f"{ws_scheme}://{authority}" + reverse("goldpath:api:workspace-agent", kwargs={"pk": workspace.pk})


def agent_launch(build: WorkspaceBuild) -> str:
    """The session supervisor's argv (the template runs it without a shell), JSON."""
    return json.dumps([sys.executable, "-m", "catalog.workspace_host", "--build", str(build.pk)])


def session_spec(workspace: Workspace, build: WorkspaceBuild) -> dict[str, Any]:
    """For a start: a new agent token (the previous one stops working) and the tools' session; for a stop or
    delete: nothing, and the agent's token is revoked."""
    if build.transition == Transition.STOP or build.transition == Transition.DELETE:
        terminal_services.agent_token_revoke(workspace_id=workspace.pk)
        workspace_tools.workspace_gateway_key_revoke(workspace=workspace)
        return {}
    spec: dict[str, Any] = {
        "workspace_id": str(workspace.pk),
        "agent_url": agent_url(workspace),
        "agent_token": terminal_services.agent_token_rotate(workspace_id=workspace.pk),
        # for restarting a dead agent: the supervisor (never the sandbox) asks for a new token with its key
        "session_key": terminal_services.session_key(workspace_id=workspace.pk, build_id=build.pk),
        "token_url": web_base_url() + reverse("goldpath:api:workspace-agent-token", kwargs={"pk": workspace.pk}),
    }
    spec.update(workspace_tools.workspace_tool_session(workspace, build))
    return spec
