"""The sign-in service: find or create the user of a provider's subject, then re-sync their teams and role.

The sign-in service: find or create the user of a provider's subject, then re-sync their teams and role from
the mapping rules. Runs at every SSO sign-in, in one transaction.

- A returning user is found by issuer + subject only (never by username or email, which a provider may let
  people choose or reuse). A new one gets a username from `preferred_username` (else the email's local part,
  else the subject), made safe and unique (`alice`, `alice-2`, ...); email (unless unverified) and name follow
  the provider.
- Team and role changes go through the team services (catalog.services.teams), exactly as an admin's clicks do,
  so they are audited the same way; the actor is the `sso` principal.
- The sync takes back only what it granted (SsoMembership, SsoRoleGrant). A membership or role given by hand is
  left alone, even in a mapped team; a user who leaves every mapped group loses the memberships the sync gave,
  and so their teams' grants, at this sign-in.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from .. import audit
from ..conf import goldpath_settings
from ..models import Profile, Role, SsoIdentity, SsoMappingRule, SsoMembership, SsoRoleGrant, Team, TeamLevel
from ..services import teams as team_services

User = get_user_model()
ACTOR_NAME = "sso"
MAX_CLAIM_VALUES = 1000
MAX_VALUE_LENGTH = 255
# when several role rules match, the first role of this list wins
ROLE_PRECEDENCE = [Role.ADMIN, Role.PLATFORM_ENGINEER, Role.AUDITOR, Role.MANAGER, Role.DEVELOPER]


class SignInRefused(Exception):
    """The provider vouched for someone Goldpath will not sign in; the message is meant for them."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.message = message
        self.reason = reason


class SsoActor:
    """The principal the sync acts as: the team services let only admins change members and roles, and the
    sync applies the admins' rules. Audit events name it `sso` (it is not a user and cannot sign in)."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_superuser = True
    is_staff = False
    pk = None
    id = None

    def __init__(self) -> None:
        self.username = ACTOR_NAME
        self._goldpath_role = Role.ADMIN

    def __str__(self) -> str:
        return self.username


@dataclass
class Claims:
    subject: str
    username_hint: str
    email: str
    first_name: str
    last_name: str
    values: list[str] = field(default_factory=list)


def _text(value: Any, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def claim_values(claims: dict[str, Any], path: str) -> list[str]:
    """The values of the mapped claim: a list of strings (or numbers), or one string; a dotted path reaches a
    nested claim (`realm_access.roles`). Anything else counts as no values. Values are kept exactly as the
    provider sent them (never stripped or case-folded): ` platform-admins` is another group at the provider,
    perhaps one its users may create, and must not match the rule for `platform-admins`."""
    value: Any = claims
    for part in (path or "groups").split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str | int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        return []
    seen: dict[str, None] = {}
    for item in value[:MAX_CLAIM_VALUES]:
        if isinstance(item, str | int) and not isinstance(item, bool):
            text = str(item)
            if text.strip() and len(text) <= MAX_VALUE_LENGTH:
                seen[text] = None
    return list(seen)


def verified_email(claims: dict[str, Any]) -> str:
    """The email, unless the provider says it did not verify it (`email_verified` false) or it is no address: an
    address anyone may type must not become the git author of accepted agent commits, nor match imported usage
    events to another person; a malformed one would fail the user's validation (a 500, not a sign-in)."""
    email = _text(claims.get("email"), 254)
    if claims.get("email_verified") in (False, "false"):
        return ""
    try:
        validate_email(email)
    except ValidationError:
        return ""
    return email


def parse_claims(claims: dict[str, Any]) -> Claims:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise SignInRefused("The sign-in provider did not say who you are.", "no_subject")
    email = verified_email(claims)
    given, family = _text(claims.get("given_name"), 150), _text(claims.get("family_name"), 150)
    if not given and not family:
        given, _, family = _text(claims.get("name"), 301).partition(" ")
    hint = _text(claims.get("preferred_username"), 150) or email.partition("@")[0] or subject
    return Claims(
        subject=subject,
        username_hint=hint,
        email=email,
        first_name=given[:150],
        last_name=family.strip()[:150],
        values=claim_values(claims, goldpath_settings.OIDC_GROUPS_CLAIM),
    )


def sanitize_username(hint: str) -> str:
    """ASCII letters, digits, `.`, `_` and `-` only (usernames appear in URLs and audit rows), lower case."""
    ascii_hint = unicodedata.normalize("NFKD", hint).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", ascii_hint.lower()).strip(".-_")
    return cleaned[:140] or "user"


def unique_username(hint: str) -> str:
    base = sanitize_username(hint)
    candidate, n = base, 1
    while User.objects.filter(username__iexact=candidate).exists() or candidate == ACTOR_NAME:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _update_profile(user: Any, claims: Claims) -> dict[str, list[str]]:
    changes = {}
    for attr, value in (("email", claims.email), ("first_name", claims.first_name), ("last_name", claims.last_name)):
        if getattr(user, attr) != value:
            changes[attr] = [getattr(user, attr), value]
            setattr(user, attr, value)
    if changes:
        user.save(update_fields=list(changes))
    return changes


def _current_role(user: Any) -> str:
    if user.is_superuser:
        return Role.ADMIN
    return Profile.objects.filter(user=user).values_list("role", flat=True).first() or Role.DEVELOPER


def _team_state(team: Team, user: Any) -> tuple[bool, bool]:
    """(member, manager), read as the selectors read them: members by the team's group, managers by `managers`."""
    return (
        Team.objects.filter(pk=team.pk, group__user=user).exists(),
        Team.objects.filter(pk=team.pk, managers=user).exists(),
    )


def desired_grants(values: list[str]) -> tuple[dict[int, str], str | None]:
    """What the rules grant for these claim values: {team id: member|manager} and the winning role (or None)."""
    wanted = set(values)
    teams: dict[int, str] = {}
    roles: set[str] = set()
    for rule in SsoMappingRule.objects.filter(claim_value__in=wanted):
        if rule.team_id:
            if teams.get(rule.team_id) != TeamLevel.MANAGER:
                teams[rule.team_id] = rule.team_level
        elif rule.role:
            roles.add(rule.role)
    role = next((r for r in ROLE_PRECEDENCE if r in roles), None)
    return teams, role


def _sync_team(actor: SsoActor, user: Any, team: Team, want: str | None, row: SsoMembership | None) -> list[str]:
    """Bring one team to: what the rules want, plus whatever was granted by hand. Returns what changed."""
    member, manager = _team_state(team, user)
    granted_member = bool(row and row.granted_member)
    granted_manager = bool(row and row.granted_manager)
    want_member, want_manager = want is not None, want == TeamLevel.MANAGER  # a manager is also a member
    target_member = want_member or (member and not granted_member)
    target_manager = want_manager or (manager and not granted_manager)
    new_member_flag = want_member and (granted_member or not member)
    new_manager_flag = want_manager and (granted_manager or not manager)
    done: list[str] = []
    if (member and not target_member) or (manager and not target_manager):
        team_services.team_member_remove(team=team, actor=actor, user=user)
        member = manager = False
        done.append("removed")
    if target_manager and not manager:
        team_services.team_member_add(team=team, actor=actor, user=user, manager=True)
        member, manager = _team_state(team, user)
        done.append("manager")
    if target_member and not member:
        team_services.team_member_add(team=team, actor=actor, user=user)
        done.append("member")
    if new_member_flag or new_manager_flag:
        SsoMembership.objects.update_or_create(
            user=user, team=team, defaults={"granted_member": new_member_flag, "granted_manager": new_manager_flag}
        )
    elif row is not None:
        row.delete()
    return done


def _sync_role(actor: SsoActor, user: Any, role: str | None) -> list[str] | None:
    """Set the rules' role; when no rule applies any more, give back the role the user had before the sync set
    one (unless someone changed it by hand since). Returns [old, new] when the role changed."""
    row = SsoRoleGrant.objects.select_for_update().filter(user=user).first()
    current = _current_role(user)
    target = role
    if role is None:
        target = row.previous_role if row is not None and current == row.role else None
        if row is not None:
            row.delete()
    elif row is None:
        SsoRoleGrant.objects.create(user=user, role=role, previous_role=current)
    elif row.role != role:
        row.role = role
        row.save(update_fields=["role", "updated_at"])
    if target is None or target == current:
        return None
    team_services.user_set_role(user=user, actor=actor, role=target)
    return [current, target]


def sync_user(user: Any, values: list[str]) -> dict[str, Any]:
    """Re-sync one user's mapped teams and role from the rules; every change goes through the team services."""
    actor = SsoActor()
    wanted_teams, role = desired_grants(values)
    rows = {row.team_id: row for row in SsoMembership.objects.select_for_update().filter(user=user)}
    teams = Team.objects.in_bulk(set(wanted_teams) | set(rows))
    changes: dict[str, Any] = {}
    for team_id in sorted(teams):
        done = _sync_team(actor, user, teams[team_id], wanted_teams.get(team_id), rows.get(team_id))
        if done:
            changes[teams[team_id].slug] = done
    role_change = _sync_role(actor, user, role)
    result: dict[str, Any] = {"teams": changes}
    if role_change:
        result["role"] = role_change
    return result


@transaction.atomic
def sso_sign_in(*, issuer: str, claims: dict[str, Any]) -> Any:
    """The user the provider vouched for, created on first sign-in, with profile, teams and role re-synced."""
    parsed = parse_claims(claims)
    identity = (
        SsoIdentity.objects.select_for_update().select_related("user").filter(issuer=issuer, subject=parsed.subject)
    ).first()
    created = identity is None
    if identity is None:
        user = team_services.user_create(
            actor=SsoActor(), username=unique_username(parsed.username_hint), email=parsed.email, password=None
        )
        identity = SsoIdentity.objects.create(user=user, issuer=issuer, subject=parsed.subject)
    user = identity.user
    if not user.is_active:
        raise SignInRefused("Your Goldpath account is deactivated. Ask an admin to reactivate it.", "user_inactive")
    profile = _update_profile(user, parsed)
    changes = sync_user(user, parsed.values)
    identity.claim_values = parsed.values
    identity.last_login_at = timezone.now()
    identity.save(update_fields=["claim_values", "last_login_at"])
    audit.record(
        actor=user,
        verb="auth.sso_signed_in",
        target=user,
        target_repr=user.username,
        payload={
            "issuer": issuer,
            "subject": parsed.subject,
            "claim_values": parsed.values,
            "created": created,
            "profile": profile,
            **changes,
        },
    )
    return user
