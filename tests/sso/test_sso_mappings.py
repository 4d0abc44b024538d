"""The mapping rules page (admins only) and the claim handling the sync relies on."""

from __future__ import annotations

import pytest
from django.test import Client

from catalog.models import AuditEvent, SsoMappingRule
from catalog.sso import rules
from catalog.sso.sync import claim_values, parse_claims, sanitize_username, unique_username
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
PAGE = "/sso/mappings/"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


@pytest.fixture
def admin(people):
    return people["admin"]


def test_admins_add_edit_and_delete_rules_each_audited(admin, teams):
    client = client_for(admin)
    assert client.get(PAGE).status_code == 200
    response = client.post(PAGE, {"claim_value": " eng-payments ", "kind": "member", "team": "payments"})
    assert response.status_code == 302
    rule = SsoMappingRule.objects.get()
    assert (rule.claim_value, rule.team.slug, rule.team_level, rule.role) == ("eng-payments", "payments", "member", "")
    page = client.get(PAGE).content.decode()
    assert "eng-payments" in page and "Payments" in page

    response = client.post(
        f"/sso/mappings/{rule.pk}/edit/", {"claim_value": "platform-admins", "kind": "role", "role": "admin"}
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.claim_value, rule.team, rule.role) == ("platform-admins", None, "admin")

    assert client.post(f"/sso/mappings/{rule.pk}/delete/").status_code == 302
    assert not SsoMappingRule.objects.exists()
    verbs = list(AuditEvent.objects.filter(verb__startswith="sso_rule.").order_by("pk").values_list("verb", flat=True))
    assert verbs == ["sso_rule.created", "sso_rule.updated", "sso_rule.deleted"]
    update = AuditEvent.objects.get(verb="sso_rule.updated")
    assert (
        update.payload["before"]["target"] == "member of payments" and update.payload["after"]["target"] == "role admin"
    )


def test_bad_rules_are_400_with_field_errors(admin, teams):
    client = client_for(admin)
    response = client.post(PAGE, {"claim_value": "eng", "kind": "member"})
    assert response.status_code == 400 and "Choose the team" in response.content.decode()
    response = client.post(PAGE, {"claim_value": "", "kind": "nonsense", "role": "emperor"})
    assert response.status_code == 400
    rules.sso_rule_create(actor=admin, claim_value="eng", kind="member", team=teams["payments"])
    response = client.post(PAGE, {"claim_value": "eng", "kind": "member", "team": "payments"})
    assert response.status_code == 400 and "already maps" in response.content.decode()
    assert (
        client.post("/sso/mappings/999999/edit/", {"claim_value": "x", "kind": "role", "role": "admin"}).status_code
        == 404
    )
    assert SsoMappingRule.objects.count() == 1


@pytest.mark.parametrize("who", ["alice", "bob", "carol", "erin"])
def test_only_admins_see_or_change_the_rules(people, teams, who):
    rule = rules.sso_rule_create(actor=people["admin"], claim_value="eng", kind="member", team=teams["payments"])
    client = client_for(people[who])
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, {"claim_value": "x", "kind": "role", "role": "admin"}).status_code == 403
    assert client.post(f"/sso/mappings/{rule.pk}/delete/").status_code == 403
    assert SsoMappingRule.objects.count() == 1
    with pytest.raises(rules.NotPermitted):
        rules.sso_rule_create(actor=people[who], claim_value="y", kind="role", role="admin")


def test_anonymous_visitors_are_sent_to_sign_in(db):
    response = Client().get(PAGE)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_claim_values_and_usernames():
    # values are kept verbatim: " b " is another group than "b"
    assert claim_values({"groups": ["a", "a", " b ", 7, None, True, "", "x" * 300]}, "groups") == ["a", " b ", "7"]
    assert claim_values({"groups": "solo"}, "groups") == ["solo"]
    assert claim_values({"realm_access": {"roles": ["r1"]}}, "realm_access.roles") == ["r1"]
    assert claim_values({"groups": {"not": "a list"}}, "groups") == []
    assert claim_values({}, "groups") == []
    assert sanitize_username("Zoë O'Brien/../admin") == "zoe-o-brien-..-admin"
    assert sanitize_username("  ") == "user"
    parsed = parse_claims({"sub": "s-1", "email": "j.doe@example.test", "name": "Jane Q Doe"})
    assert (parsed.username_hint, parsed.first_name, parsed.last_name) == ("j.doe", "Jane", "Q Doe")
    with pytest.raises(Exception, match="did not say who you are"):
        parse_claims({"email": "nobody@example.test"})


def test_unique_usernames_never_reuse_an_account(db):
    UserFactory(username="alice")
    UserFactory(username="alice-2")
    assert unique_username("Alice") == "alice-3"
    assert unique_username("sso") == "sso-2"  # the sync's own principal name
