"""The terminal page: xterm.js in the browser, talking the terminal protocol over the API's WebSocket.

The WebSocket is `goldpath:api:workspace-terminal`. Only the owner opens it; who cannot see the workspace gets a
404, who can but is not its owner a 403 (the socket refuses them the same way).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse

from ..models import Workspace, WorkspaceStatus
from ..selectors import visible_workspaces
from ..terminals.selectors import can_open_terminal
from .rendering import render


def _visible(request: HttpRequest, pk) -> Workspace:
    try:
        return visible_workspaces(request.user).get(pk=pk)
    except Workspace.DoesNotExist as exc:
        raise Http404("No such workspace.") from exc


def recording_url(session_id) -> str:
    """The recording API's URL for one session (what the Replay button fetches), under the host's prefix."""
    return reverse("goldpath:api:terminalsession-recording", kwargs={"pk": session_id})


@login_required
def workspace_terminal(request: HttpRequest, pk) -> HttpResponse:
    ws = _visible(request, pk)
    if not can_open_terminal(request.user, ws):
        raise PermissionDenied("Only the workspace's owner may open its terminal.")
    context = {
        "ws": ws,
        "running": ws.status == WorkspaceStatus.RUNNING,
        "ws_path": reverse("goldpath:api:workspace-terminal", kwargs={"pk": ws.pk}),
    }
    return render(request, "workspaces/terminal.html", context)

