"""Team, member and role services (admins), each audited.

A team's members are the users of its group (the one record of membership, catalog.models.teams); its managers
are members too.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from .. import audit, permissions
from ..models import Profile, Role, Team
from .errors import InvalidInput, NotPermitted, TransitionNotAllowed

User = get_user_model()


def _require_admin(actor: Any) -> None:
    if not permissions.can_manage_teams(actor):
        raise NotPermitted("Only admins manage teams, members and roles.")


@transaction.atomic
def team_create(*, actor: Any, slug: str, name: str, description: str = "") -> Team:
    _require_admin(actor)
    if Team.objects.filter(slug=slug).exists():
        raise InvalidInput("Slug taken.", errors={"slug": ["A team with this slug already exists."]})
    group, _ = Group.objects.get_or_create(name=f"team:{slug}")
    team = Team(slug=slug, name=name, description=description, group=group)
    try:
        team.full_clean()
    except ValidationError as exc:
        raise InvalidInput("The team is not valid.", errors=exc.message_dict) from exc
    team.save()
    audit.record(actor=actor, verb="team.created", target=team, payload={"name": name})
    return team


@transaction.atomic
def team_update(*, team: Team, actor: Any, data: dict[str, Any]) -> Team:
    _require_admin(actor)
    team = Team.objects.select_for_update().get(pk=team.pk)
    changes = {}
    for field in ("name", "description"):
        if field in data and getattr(team, field) != data[field]:
            changes[field] = [getattr(team, field), data[field]]
            setattr(team, field, data[field])
    if changes:
        team.save()
        audit.record(actor=actor, verb="team.updated", target=team, payload={"changes": changes})
    return team


@transaction.atomic
def team_delete(*, team: Team, actor: Any) -> None:
    _require_admin(actor)
    team = Team.objects.select_for_update().get(pk=team.pk)
    if team.owned_tools.exists():
        raise TransitionNotAllowed("The team owns tools; move them to another team first.")
    slug, pk = team.slug, team.pk
    group = team.group
    team.delete()
    group.delete()
    audit.record(actor=actor, verb="team.deleted", target_type="team", target_id=pk, target_repr=slug)


def _set_role(user: Any, role: str) -> str | None:
    profile, _ = Profile.objects.get_or_create(user=user)
    old = profile.role
    if old != role:
        profile.role = role
        profile.save(update_fields=["role"])
    is_admin = role == Role.ADMIN
    if user.is_staff != is_admin or user.is_superuser != is_admin:
        user.is_staff = user.is_superuser = is_admin
        user.save(update_fields=["is_staff", "is_superuser"])
    user._goldpath_role = None
    return old if old != role else None


def _lock_team(team: Team) -> Team:
    return Team.objects.select_for_update().select_related("group").get(pk=team.pk)


def _forget_teams(user: Any) -> None:
    user._goldpath_team_ids = None  # selectors.team_ids_of caches it on the user object


@transaction.atomic
def team_member_add(*, team: Team, actor: Any, user: Any, role: str | None = None, manager: bool = False) -> Team:
    """Add a member (and optionally set their role); `manager=True` makes them a manager of the team, and a
    member too: a team's manager is always one of its members. Membership is the team's group (what tools are
    granted to and what the policy reads), so the member may use the team's tools at once. Audited when
    anything changed."""
    _require_admin(actor)
    if role is not None and role not in Role.values:
        raise InvalidInput("Unknown role.", errors={"role": [f"Choose one of: {', '.join(Role.values)}."]})
    team = _lock_team(team)
    payload: dict[str, Any] = {"user": user.username}
    if not team.members.filter(pk=user.pk).exists():
        user.groups.add(team.group)
        _forget_teams(user)
        payload["member"] = True
    if manager and not team.managers.filter(pk=user.pk).exists():
        team.managers.add(user)
        payload["manager"] = True
    if role is not None:
        old = _set_role(user, role)
        if old is not None:
            payload["role"] = [old, role]
    if len(payload) > 1:
        audit.record(actor=actor, verb="team.member_added", target=team, payload=payload)
    return team


@transaction.atomic
def team_member_remove(*, team: Team, actor: Any, user: Any) -> Team:
    """Take someone off a team: they leave its group (its tools are no longer theirs) and stop managing it."""
    _require_admin(actor)
    team = _lock_team(team)
    was_member = team.members.filter(pk=user.pk).exists()
    was_manager = team.managers.filter(pk=user.pk).exists()
    if not (was_member or was_manager):
        raise InvalidInput("Not a member.", errors={"user": [f"{user.username} is not in team {team.slug}."]})
    user.groups.remove(team.group)
    team.managers.remove(user)
    _forget_teams(user)
    audit.record(
        actor=actor,
        verb="team.member_removed",
        target=team,
        payload={"user": user.username, "was_manager": was_manager},
    )
    return team


@transaction.atomic
def user_set_role(*, user: Any, actor: Any, role: str) -> Any:
    _require_admin(actor)
    if role not in Role.values:
        raise InvalidInput("Unknown role.", errors={"role": [f"Choose one of: {', '.join(Role.values)}."]})
    if user.pk == getattr(actor, "pk", None) and role != Role.ADMIN:
        raise TransitionNotAllowed("You cannot take the admin role from yourself.")
    old = _set_role(user, role)
    if old is not None:
        audit.record(
            actor=actor, verb="user.role_changed", target=user, target_repr=user.username, payload={"role": [old, role]}
        )
    return user


@transaction.atomic
def user_create(
    *, actor: Any, username: str, email: str = "", password: str | None = None, role: str = Role.DEVELOPER
) -> Any:
    _require_admin(actor)
    if User.objects.filter(username=username).exists():
        raise InvalidInput("Username taken.", errors={"username": ["A user with this name already exists."]})
    if role not in Role.values:
        raise InvalidInput("Unknown role.", errors={"role": [f"Choose one of: {', '.join(Role.values)}."]})
    user = User(username=username, email=email)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    try:
        user.full_clean()
    except ValidationError as exc:
        raise InvalidInput("The user is not valid.", errors=exc.message_dict) from exc
    user.save()
    _set_role(user, role)
    audit.record(
        actor=actor, verb="user.created", target=user, target_repr=username, payload={"role": role, "email": email}
    )
    return user
