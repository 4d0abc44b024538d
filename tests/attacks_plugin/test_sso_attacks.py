"""A hostile identity-provider-side user against Goldpath's SSO, through the real OIDC provider process: group values
that only look like a mapped group, odd claim shapes, usernames that collide with existing accounts or with the
sync's own principal, emails the provider did not verify, open redirects and login CSRF on the callback."""

from __future__ import annotations

import json
from urllib.parse import quote, urljoin, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model

from catalog.models import Role, SsoIdentity, Team
from catalog.permissions import role_of
from catalog.services import teams as team_services
from catalog.sso import rules
from tests.factories import UserFactory
from tests.sso.conftest import PASSWORDS
from tests.sso.flow import forms

User = get_user_model()


@pytest.fixture
def org(db):
    """eng-payments -> member of payments, platform-admins -> role admin."""
    admin = UserFactory(username="root-admin", role="admin")
    payments = team_services.team_create(actor=admin, slug="payments", name="Payments")
    rules.sso_rule_create(actor=admin, claim_value="eng-payments", kind="member", team=payments)
    rules.sso_rule_create(actor=admin, claim_value="platform-admins", kind="role", role="admin")
    return {"admin": admin, "payments": payments}


def idp_set(idp, login: str, **fields) -> None:
    """What the provider says about `login` from the next sign-in on (any JSON, as a hostile directory holds it)."""
    users = idp.users()
    users[login].update(fields)
    idp.users_file.write_text(json.dumps(users))


def nora():
    return SsoIdentity.objects.get(subject="u-1003").user


def in_payments(user) -> bool:
    return Team.objects.filter(slug="payments", group__user=user).exists()


LOOK_ALIKES = {
    "leading space": lambda g: " " + g,
    "trailing space": lambda g: g + " ",
    "no-break space": lambda g: g + "\u00a0",  # str.strip() removes it, directories keep it
    "tab and newline": lambda g: "\t" + g + "\n",
    "ideographic space": lambda g: "\u3000" + g,
    "upper case": str.upper,
    "title case": str.title,
    "look-alike hyphen": lambda g: g.replace("-", "\u2010"),
}


@pytest.mark.parametrize("trick", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_a_group_that_only_looks_like_a_mapped_one_grants_nothing(idp, org, trick):
    """A directory user who may create groups names one like the admins' group: it must not map."""
    groups = [trick("platform-admins"), trick("eng-payments")]
    idp_set(idp, "nora", groups=groups)
    assert idp.sign_in("nora").response.status_code == 200
    user = nora()
    assert role_of(user) == Role.DEVELOPER and not user.is_superuser
    assert not in_payments(user)
    assert SsoIdentity.objects.get(subject="u-1003").claim_values == groups  # audited as the provider said


@pytest.mark.parametrize(
    "groups",
    [
        "platform-admins eng-payments",
        "platform-admins,eng-payments",
        {"platform-admins": True},
        [["platform-admins"]],
        [{"name": "platform-admins"}],
        True,
        {"groups": ["platform-admins"]},
    ],
)
def test_odd_claim_shapes_grant_nothing(idp, org, groups):
    idp_set(idp, "nora", groups=groups)
    assert idp.sign_in("nora").response.status_code == 200
    assert role_of(nora()) == Role.DEVELOPER and not in_payments(nora())


def test_a_single_string_claim_is_one_exact_value(idp, org):
    idp_set(idp, "nora", groups="eng-payments")
    idp.sign_in("nora")
    assert in_payments(nora()) and role_of(nora()) == Role.DEVELOPER


@pytest.mark.parametrize("name", ["root-admin", "Root-Admin", "ROOT-ADMIN\u200b", "\uff32oot-admin", "sso", "SSO "])
def test_a_username_colliding_with_an_account_or_the_sync_principal_gets_a_new_one(idp, org, name):
    idp_set(idp, "nora", preferred_username=name, groups=[])
    assert idp.sign_in("nora").response.status_code == 200
    user = nora()
    assert user.pk != org["admin"].pk and user.username.lower() not in ("root-admin", "sso")
    assert role_of(user) == Role.DEVELOPER
    assert role_of(User.objects.get(username="root-admin")) == Role.ADMIN
    assert not SsoIdentity.objects.filter(user=org["admin"]).exists()


def test_an_email_the_provider_did_not_verify_is_not_taken(idp, org):
    """A directory that lets people type any address: the admin's address must not land on another account (it is
    the git author of accepted agent commits and matches imported usage events to people)."""
    org["admin"].email = "root@example.test"
    org["admin"].save(update_fields=["email"])
    idp_set(idp, "nora", email="root@example.test", email_verified=False)
    assert idp.sign_in("nora").response.status_code == 200
    assert nora().email == ""
    idp_set(idp, "nora", email="nora@example.test", email_verified=True)
    idp.sign_in("nora")
    assert nora().email == "nora@example.test"


@pytest.mark.parametrize("email", ["not an email", "nora@", "<script>@x", "a" * 250 + "@x.test"])
def test_a_malformed_email_is_no_500(idp, org, email):
    idp_set(idp, "nora", email=email)
    page = idp.sign_in("nora").response
    assert page.status_code == 200 and page.url.startswith(idp.portal), page.text[:300]
    assert nora().email == ""


def _sign_in_from(session: requests.Session, start: str, login: str) -> list[str]:
    """Sign in starting at `start`, following every redirect by hand; returns every URL visited."""
    seen = [start]

    def follow(r):
        for _ in range(20):
            if not r.is_redirect:
                return r
            location = urljoin(r.url, r.headers["location"])
            seen.append(location)
            assert urlsplit(location).hostname in ("127.0.0.1", "localhost"), f"redirected off-site: {location}"
            r = session.get(location, allow_redirects=False, timeout=30)
        raise AssertionError("too many redirects")

    r = follow(session.get(start, allow_redirects=False, timeout=30))
    (form,) = forms(r.text)
    data = {"login": login, "password": PASSWORDS[login]}
    r = follow(session.post(urljoin(r.url, form["action"]), data=data, allow_redirects=False))
    if "allow access" in r.text.lower():
        (form,) = forms(r.text)
        r = follow(session.post(urljoin(r.url, form["action"]), data=form["fields"], allow_redirects=False))
    assert r.status_code == 200
    return seen


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "https:evil.example",
        "http://127.0.0.1.evil.example/",
        "\thttps://evil.example/",
        "javascript:alert(1)",
    ],
)
def test_next_never_leaves_the_portal(idp, org, target):
    seen = _sign_in_from(requests.Session(), f"{idp.portal}/sso/login/?next={quote(target, safe='')}", "nora")
    assert seen[-1].startswith(idp.portal)  # every hop stayed on the portal or the provider


def test_a_local_next_is_kept(idp, org):
    seen = _sign_in_from(requests.Session(), f"{idp.portal}/sso/login/?next=/teams/", "nora")
    assert seen[-1] == f"{idp.portal}/teams/"


def test_login_csrf_an_attackers_callback_does_not_sign_the_victim_in(idp, org):
    """The attacker signs in as themselves up to the callback and makes the victim's browser open it."""
    attacker = idp.sign_in("nora", stop_at_callback=True)
    assert attacker.callback_url
    fresh_victim = requests.Session()
    assert fresh_victim.get(attacker.callback_url, timeout=30).status_code == 400
    # a victim who has started a sign-in of their own (a state of theirs in the session) is refused too
    victim = requests.Session()
    victim.get(f"{idp.portal}/sso/login/", allow_redirects=False, timeout=30)
    assert victim.get(attacker.callback_url, timeout=30).status_code == 400
    for s in (fresh_victim, victim):
        assert s.get(f"{idp.portal}/", allow_redirects=False, timeout=30).status_code == 302
    assert not SsoIdentity.objects.filter(subject="u-1003").exists()
    # the attacker's own code still only works in the attacker's browser, once
    assert attacker.session.get(attacker.callback_url, timeout=30).status_code == 200
    assert attacker.session.get(attacker.callback_url, allow_redirects=False, timeout=30).status_code == 400
