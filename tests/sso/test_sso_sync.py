"""Signing in through a real OIDC provider process: users made on first sign-in, teams and roles from the mapping
rules, re-synced at every sign-in (after the provider's groups change), audited like changes made by hand."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from catalog import policy
from catalog.models import AuditEvent, Role, SsoIdentity, SsoMembership, Team
from catalog.permissions import role_of
from catalog.services import access
from catalog.services import teams as team_services
from catalog.sso import rules
from tests.factories import ToolFactory, UserFactory

User = get_user_model()


@pytest.fixture
def org(db):
    """Teams and rules as a platform admin sets them up: eng-payments -> member of payments, eng-search -> member
    of search, payments-leads -> manager of payments, platform-admins -> role admin, sre -> role platform engineer."""
    admin = UserFactory(username="root-admin", role="admin")
    made = {
        slug: team_services.team_create(actor=admin, slug=slug, name=slug.title())
        for slug in ("payments", "search", "platform")
    }
    rules.sso_rule_create(actor=admin, claim_value="eng-payments", kind="member", team=made["payments"])
    rules.sso_rule_create(actor=admin, claim_value="eng-search", kind="member", team=made["search"])
    rules.sso_rule_create(actor=admin, claim_value="payments-leads", kind="manager", team=made["payments"])
    rules.sso_rule_create(actor=admin, claim_value="platform-admins", kind="role", role="admin")
    rules.sso_rule_create(actor=admin, claim_value="sre", kind="role", role="platform_engineer")
    return {"admin": admin, **made}


def state(username: str, slug: str) -> tuple[bool, bool]:
    """(member, manager) of a team, as the policy and the team page read it."""
    user = User.objects.get(username=username)
    team = Team.objects.get(slug=slug)
    return team.group.user_set.filter(pk=user.pk).exists(), team.managers.filter(pk=user.pk).exists()


def sso_events(verb_part: str, **filters):
    return AuditEvent.objects.filter(actor_repr="sso", verb__contains=verb_part, **filters)


def fresh(username: str):
    return User.objects.get(username=username)


def test_first_sign_in_creates_the_user_with_team_membership_and_audit_events(idp, org):
    result = idp.sign_in("priya")
    page = result.response
    assert page.status_code == 200 and page.url.startswith(idp.portal)
    priya = fresh("priya")
    assert (priya.email, priya.first_name, priya.last_name) == ("priya@example.test", "Priya", "Patel")
    assert not priya.has_usable_password()
    assert role_of(priya) == Role.DEVELOPER
    assert state("priya", "payments") == (True, False)
    assert state("priya", "search") == (False, False)
    identity = SsoIdentity.objects.get(user=priya)
    assert (identity.issuer, identity.subject, identity.claim_values) == (
        idp.provider.issuer,
        "u-1001",
        ["eng-payments"],
    )
    # audited like an admin's clicks, by the `sso` principal
    assert sso_events("user.create", target_id=str(priya.pk)).count() == 1
    add = sso_events("member_add", target_repr="payments").get()
    assert add.payload["user"] == "priya"
    login = AuditEvent.objects.get(verb="auth.sso_signed_in", actor=priya)
    assert login.payload["created"] is True and login.payload["teams"] == {"payments": ["member"]}
    # signed in: the portal answers as priya
    assert "priya" in result.session.get(f"{idp.portal}/teams/payments/", timeout=30).text


def test_role_mapping_makes_an_admin_who_can_edit_the_rules(idp, org):
    result = idp.sign_in("sam")
    sam = fresh("sam")
    assert role_of(sam) == Role.ADMIN and sam.is_superuser
    change = sso_events("role", target_id=str(sam.pk)).get()
    assert change.payload["role"] == ["developer", "admin"]
    assert result.session.get(f"{idp.portal}/sso/mappings/", timeout=30).status_code == 200


def test_every_sign_in_resyncs_teams_and_role_and_leaves_hand_grants_alone(idp, org):
    idp.set_groups("priya", ["eng-payments", "eng-search", "payments-leads", "sre"])
    idp.sign_in("priya")
    assert state("priya", "payments") == (True, True)
    assert state("priya", "search") == (True, False)
    assert role_of(fresh("priya")) == Role.PLATFORM_ENGINEER
    # an admin adds priya to platform by hand: no rule covers it
    team_services.team_member_add(team=org["platform"], actor=org["admin"], user=fresh("priya"))

    idp.set_groups("priya", ["eng-search"])
    idp.sign_in("priya")
    assert state("priya", "payments") == (False, False)
    assert state("priya", "search") == (True, False)
    assert state("priya", "platform") == (True, False)  # granted by hand: left alone
    assert role_of(fresh("priya")) == Role.DEVELOPER  # the role she had before the rules gave her one
    assert sso_events("member_remove", target_repr="payments").count() == 1
    assert not SsoMembership.objects.filter(user__username="priya", team__slug="payments").exists()

    # the same groups again: nothing to change, nothing audited but the sign-in
    before = AuditEvent.objects.filter(actor_repr="sso").count()
    idp.sign_in("priya")
    assert AuditEvent.objects.filter(actor_repr="sso").count() == before
    assert AuditEvent.objects.filter(verb="auth.sso_signed_in", actor__username="priya").count() == 3


def test_a_user_removed_from_all_mapped_groups_loses_memberships_and_team_grants(idp, org):
    tool = ToolFactory(slug="claude-code", status="approved", risk_tier="low", owner_team=org["platform"])
    access.grant_create(actor=org["admin"], team=org["payments"], tool=tool)
    idp.set_groups("priya", ["eng-payments", "unmapped-group"])
    idp.sign_in("priya")
    assert policy.decide(fresh("priya"), tool).allowed

    idp.set_groups("priya", ["unmapped-group"])
    idp.sign_in("priya")
    priya = fresh("priya")
    assert state("priya", "payments") == (False, False)
    decision = policy.decide(priya, tool)
    assert not decision.allowed and "no_grant" in [r.code for r in decision.reasons]
    assert SsoIdentity.objects.get(user=priya).claim_values == ["unmapped-group"]


def test_a_manager_rule_makes_a_manager_and_member_and_takes_both_back(idp, org):
    idp.set_groups("nora", ["payments-leads"])
    idp.sign_in("nora")
    assert state("nora", "payments") == (True, True)
    idp.set_groups("nora", [])
    idp.sign_in("nora")
    assert state("nora", "payments") == (False, False)


def test_a_hand_granted_membership_in_a_mapped_team_is_never_taken_back(idp, org):
    idp.sign_in("nora")  # no groups: a user with no team
    nora = fresh("nora")
    assert role_of(nora) == Role.DEVELOPER and not Team.objects.filter(group__user=nora).exists()
    team_services.team_member_add(team=org["payments"], actor=org["admin"], user=nora)
    idp.set_groups("nora", ["eng-payments"])
    idp.sign_in("nora")
    idp.set_groups("nora", [])
    idp.sign_in("nora")
    assert state("nora", "payments") == (True, False)


def test_an_existing_local_account_with_the_same_name_is_not_taken_over(idp, org):
    local = UserFactory(username="priya", role="admin")
    idp.sign_in("priya")
    sso_priya = SsoIdentity.objects.get(subject="u-1001").user
    assert sso_priya.pk != local.pk and sso_priya.username == "priya-2"
    assert role_of(fresh("priya")) == Role.ADMIN and role_of(sso_priya) == Role.DEVELOPER
    # the returning user is found by subject, whatever their name at the provider becomes
    users = idp.users()
    users["priya"]["preferred_username"] = "priya.patel"
    idp.users_file.write_text(json.dumps(users))
    idp.sign_in("priya")
    assert SsoIdentity.objects.get(subject="u-1001").user.pk == sso_priya.pk
