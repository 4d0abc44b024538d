"""Who may do what: the one module the API, pages and tasks share.

Roles are global (a user's Profile.role); managers additionally manage specific teams.
Predicates take the user and answer a bool; `visible_*` helpers live in selectors.
"""

from __future__ import annotations

from typing import Any

from .models import Role

# guardian permission codename for using a tool (granted to a team's group)
USE_AITOOL = "use_aitool"
USE_AITOOL_PERM = f"catalog.{USE_AITOOL}"


def role_of(user: Any) -> str | None:
    """The user's role, cached on the user object for the request."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    cached = getattr(user, "_goldpath_role", None)
    if cached is not None:
        return cached
    if user.is_superuser:
        role = Role.ADMIN
    else:
        profile = getattr(user, "profile", None) if hasattr(user, "profile") else None
        role = profile.role if profile is not None else Role.DEVELOPER
    user._goldpath_role = role
    return role


def is_admin(user: Any) -> bool:
    return role_of(user) == Role.ADMIN


def is_platform(user: Any) -> bool:
    """Platform engineers manage the catalog and grants; admins may do everything."""
    return role_of(user) in (Role.PLATFORM_ENGINEER, Role.ADMIN)


def is_auditor(user: Any) -> bool:
    return role_of(user) == Role.AUDITOR


def is_manager(user: Any) -> bool:
    return role_of(user) == Role.MANAGER


def is_developer(user: Any) -> bool:
    return role_of(user) == Role.DEVELOPER


def can_read_everything(user: Any) -> bool:
    return role_of(user) in (Role.AUDITOR, Role.PLATFORM_ENGINEER, Role.ADMIN)


def can_propose_tool(user: Any) -> bool:
    """Anyone signed in but auditors (who change nothing) may propose a tool."""
    return role_of(user) in (Role.DEVELOPER, Role.PLATFORM_ENGINEER, Role.MANAGER, Role.ADMIN)


def can_review_tools(user: Any) -> bool:
    return is_platform(user)


def can_request_review(user: Any, tool: Any) -> bool:
    return is_platform(user) or (tool.proposed_by_id is not None and tool.proposed_by_id == user.pk)


def can_edit_tool(user: Any, tool: Any) -> bool:
    """Platform engineers edit any tool; the proposer edits it until it is approved."""
    if is_platform(user):
        return True
    return tool.proposed_by_id == user.pk and tool.status in ("proposed", "rejected")


def can_add_tool_version(user: Any, tool: Any) -> bool:
    return can_edit_tool(user, tool)


def can_reinstate(user: Any) -> bool:
    return is_admin(user)


def can_read_audit(user: Any) -> bool:
    return role_of(user) in (Role.AUDITOR, Role.PLATFORM_ENGINEER, Role.ADMIN)


def can_manage_teams(user: Any) -> bool:
    return is_admin(user)


# --- tool access (issue 3) ----------------------------------------------------------------------


def can_manage_grants(user: Any) -> bool:
    """Platform engineers and admins grant, revoke and decide access requests."""
    return is_platform(user)


def can_request_access(user: Any, team: Any) -> bool:
    """Members request for their own team, managers for teams they manage; platform for any team."""
    role = role_of(user)
    if role is None or role == Role.AUDITOR:
        return False
    if is_platform(user):
        return True
    if team.group_id in {g.pk for g in user.groups.all()}:
        return True
    return role == Role.MANAGER and team.managers.filter(pk=user.pk).exists()


def can_decide_access_request(user: Any, access_request: Any) -> bool:
    """Platform engineers decide, but never their own request (checked by the service as a 403)."""
    return can_manage_grants(user)


def can_simulate_for(user: Any, subject: Any) -> bool:
    """The policy simulator: everyone about themselves; managers about their teams' members;
    platform engineers, auditors and admins about anyone."""
    if role_of(user) is None:
        return False
    if subject is not None and subject.pk == user.pk:
        return True
    if can_read_everything(user):
        return True
    if is_manager(user) and subject is not None:
        managed = {t.group_id for t in user.managed_teams.all()}
        return subject.groups.filter(pk__in=managed).exists()
    return False


def can_act_out_of_policy(user: Any) -> bool:
    return is_platform(user)


# --- adoption reports and usage (issue 6) -------------------------------------------------------


def can_read_reports(user: Any) -> bool:
    """Managers (for the teams they manage), auditors, platform engineers and admins; not developers."""
    return role_of(user) in (Role.MANAGER, Role.AUDITOR, Role.PLATFORM_ENGINEER, Role.ADMIN)


def can_read_usage_events(user: Any) -> bool:
    return role_of(user) in (Role.AUDITOR, Role.PLATFORM_ENGINEER, Role.ADMIN)


def can_import_usage(user: Any) -> bool:
    return is_platform(user)


# --- agent runs and provenance (issue 5) --------------------------------------------------------


def can_launch_agents(user: Any) -> bool:
    """Developers, platform engineers, managers and admins launch agent groups for their team; auditors never."""
    return role_of(user) in (Role.DEVELOPER, Role.PLATFORM_ENGINEER, Role.MANAGER, Role.ADMIN)


def can_manage_vendor_keys(user: Any) -> bool:
    return is_platform(user)


# --- templates and workspaces (issue 4) ---------------------------------------------------------
def can_manage_templates(user: Any) -> bool:
    """Create templates, push/publish/activate/deprecate versions."""
    return is_platform(user) or is_admin(user)


def can_create_workspace(user: Any) -> bool:
    return role_of(user) in ("developer", "platform_engineer", "admin")


def can_operate_workspace(user: Any, workspace: Any) -> bool:
    """Start, stop, update, delete a workspace and cancel its builds: its owner, platform engineers, admins."""
    return getattr(workspace, "owner_id", None) == getattr(user, "pk", -1) or is_platform(user) or is_admin(user)
