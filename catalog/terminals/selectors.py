"""Reads of terminal sessions, restricted to the workspace's owner and whoever may read the audit log.

A session is an audit fact: who typed into which workspace, when, how much. The page's sessions list and the
recording API both read through here, so the rule lives once.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from .. import permissions as perms
from ..models import TerminalSession, Workspace


def can_open_terminal(user: Any, workspace: Workspace) -> bool:
    """Only the owner types into a workspace: platform engineers and admins operate it but never get its shell."""
    return bool(getattr(user, "is_authenticated", False)) and workspace.owner_id == user.pk


def can_read_terminal_sessions(user: Any, workspace: Workspace) -> bool:
    return bool(getattr(user, "is_authenticated", False)) and (
        workspace.owner_id == user.pk or perms.can_read_audit(user)
    )


def visible_terminal_sessions(user: Any) -> QuerySet[TerminalSession]:
    """Every session `user` may see, newest first (the recording itself is deferred: fetch it by id)."""
    qs = TerminalSession.objects.select_related("user", "workspace").defer("recording")
    if not getattr(user, "is_authenticated", False):
        return qs.none()
    if perms.can_read_audit(user):
        return qs
    return qs.filter(Q(workspace__owner=user))


def terminal_sessions_for(user: Any, workspace: Workspace) -> QuerySet[TerminalSession]:
    """The sessions of one workspace that `user` may see (none for anyone else)."""
    if not can_read_terminal_sessions(user, workspace):
        return TerminalSession.objects.none()
    return visible_terminal_sessions(user).filter(workspace=workspace)
