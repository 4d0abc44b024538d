"""Reads, always restricted to what the user may see (NetBox's `restrict`).

The API, pages and tasks share these, so a detail route answers 404 for what the caller may not read.

Visibility rules (issue 3):
- platform engineers, auditors, admins: everything;
- managers: objects of the teams they manage (and of teams they belong to);
- developers: their own requests, and read access to their teams' requests and grants.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from . import permissions as perms
from .models import AccessGrant, AccessRequest, AITool, GrantState, Team, ToolStatus


def team_ids_of(user: Any) -> set[int]:
    """Teams the user belongs to (by the team's group: the one record of membership, which guardian grants
    to), cached per user object."""
    cached = getattr(user, "_goldpath_team_ids", None)
    if cached is None:
        cached = set(Team.objects.filter(group__user=user).values_list("pk", flat=True))
        user._goldpath_team_ids = cached
    return cached


def readable_team_ids(user: Any) -> set[int] | None:
    """Team ids whose objects the user may read; None means every team."""
    if perms.can_read_everything(user):
        return None
    ids = set(team_ids_of(user))
    if perms.is_manager(user):
        ids |= set(Team.objects.filter(managers=user).values_list("pk", flat=True))
    return ids


def visible_access_requests(user: Any) -> QuerySet[AccessRequest]:
    qs = AccessRequest.objects.select_related("tool", "team", "requester", "decided_by")
    if perms.role_of(user) is None:
        return qs.none()
    teams = readable_team_ids(user)
    if teams is None:
        return qs
    return qs.filter(Q(requester=user) | Q(team_id__in=teams))


def visible_grants(user: Any) -> QuerySet[AccessGrant]:
    qs = AccessGrant.objects.select_related("team", "tool", "granted_by", "ended_by", "request")
    if perms.role_of(user) is None:
        return qs.none()
    teams = readable_team_ids(user)
    return qs if teams is None else qs.filter(team_id__in=teams)


def team_members(team: Team) -> list[dict[str, Any]]:
    """The people of a team, by username: its members (the users of its group) and whether each manages it;
    one list for the team page and `GET /api/v1/teams/<slug>/members/`. A manager who is not a member (data
    from before the rule that managers are members) is listed with `is_member` false."""
    from django.contrib.auth import get_user_model

    managers = set(team.managers.values_list("pk", flat=True))
    people = (
        get_user_model()
        .objects.filter(Q(groups=team.group_id) | Q(pk__in=managers))
        .distinct()
        .select_related("profile")
        .order_by("username")
    )
    member_ids = set(team.members.values_list("pk", flat=True))
    return [
        {"user": u, "role": perms.role_of(u), "is_member": u.pk in member_ids, "is_manager": u.pk in managers}
        for u in people
    ]


def visible_teams(user: Any) -> QuerySet[Team]:
    """Every signed-in user may look teams up (the teams API is readable by all)."""
    return Team.objects.all() if perms.role_of(user) is not None else Team.objects.none()


def usable_tools(user: Any, queryset: QuerySet[AITool] | None = None) -> QuerySet[AITool]:
    """Tools the user may use now (default context): approved, review not expired, granted to one of
    their teams by an active, unexpired grant backed by its guardian row. One SQL query (EXISTS),
    whatever the page size."""
    queryset = AITool.objects.all() if queryset is None else queryset
    if perms.role_of(user) is None or not user.is_active:
        return queryset.none()
    now = timezone.now()
    # a semi-join on the tool ids the user's groups hold (planned as a hash join; an EXISTS per tool row
    # was 20x slower on PostgreSQL over 10,000 tools)
    granted = AccessGrant.objects.in_force(now).filter(permission__group__user=user).values("tool_id")
    return queryset.filter(
        Q(review_due__isnull=True) | Q(review_due__gte=timezone.localdate(now)),
        status=ToolStatus.APPROVED,
        pk__in=granted,
    )


def search_tools(queryset: QuerySet[AITool], text: str) -> QuerySet[AITool]:
    """The catalog's text search (the catalog page's box and the API's `?q=`/`?search=`): every word must
    appear in the name, slug, vendor or description, case-insensitively."""
    for word in (text or "").split()[:10]:
        queryset = queryset.filter(
            Q(name__icontains=word) | Q(slug__icontains=word) | Q(vendor__icontains=word) | Q(description__icontains=word)
        )
    return queryset


def team_tools(team: Team) -> QuerySet[AccessGrant]:
    return AccessGrant.objects.filter(team=team, state=GrantState.ACTIVE).select_related("tool", "granted_by")


def _team_or_requester(qs, user: Any, team_field: str, requester_field: str):
    """Rows of the teams the user may read, plus their own; everything for roles that read everything."""
    if perms.role_of(user) is None:
        return qs.none()
    teams = readable_team_ids(user)
    if teams is None:
        return qs
    return qs.filter(Q(**{f"{team_field}__in": teams}) | Q(**{requester_field: user}))


def visible_agent_groups(user: Any):
    """Agent groups: their team (and managed teams) read them; auditors, platform engineers, admins all."""
    from .models import AgentGroup

    return _team_or_requester(AgentGroup.objects.select_related("requester", "team"), user, "team_id", "requester")


def visible_agent_runs(user: Any):
    from .models import AgentRun

    qs = AgentRun.objects.select_related("group", "tool", "tool_version")
    return _team_or_requester(qs, user, "group__team_id", "group__requester")


def visible_provenance(user: Any):
    """Provenance records: auditors (and platform, admins) all; otherwise the requester's team."""
    from .models import ProvenanceRecord

    qs = ProvenanceRecord.objects.select_related("group__requester", "run__tool", "team")
    return _team_or_requester(qs, user, "team_id", "group__requester")


def visible_workspaces(user: Any):
    """Owners see theirs; platform engineers, auditors and admins everything; managers their teams'."""
    from .models import Workspace

    qs = Workspace.objects.select_related("owner", "team", "template", "template_version", "template__active_version")
    if not getattr(user, "is_authenticated", False):
        return qs.none()
    teams = readable_team_ids(user)
    if teams is None:
        return qs
    if perms.is_manager(user):
        return qs.filter(Q(owner=user) | Q(team_id__in=teams))
    return qs.filter(owner=user)


def visible_builds(user: Any):
    from .models import WorkspaceBuild

    return WorkspaceBuild.objects.filter(workspace__in=visible_workspaces(user).values("pk")).select_related(
        "workspace", "template_version__template"
    )


def repositories_for(user: Any) -> QuerySet:
    """Registered repositories: platform engineers, auditors and admins all; managers those of the teams they
    manage (and belong to); developers their teams'."""
    from .models import Repository

    qs = Repository.objects.prefetch_related("teams").order_by("slug")
    if perms.role_of(user) is None or not user.is_active:
        return qs.none()
    teams = readable_team_ids(user)
    if teams is None:
        return qs
    return qs.filter(pk__in=Repository.objects.filter(teams__in=teams).values("pk"))
