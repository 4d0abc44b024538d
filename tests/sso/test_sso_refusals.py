"""What SSO refuses, against the real provider: forged or replayed callbacks, tampered codes, answers from another
issuer, deactivated users (whose sessions and tokens also stop working), passwords when they are turned off; and
SSO switched off or unreachable. None of it is a 500."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from catalog.api_tokens import token_issue
from catalog.models import AuditEvent
from tests.factories import PASSWORD, UserFactory

User = get_user_model()


def with_params(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def signed_in(session: requests.Session, portal: str) -> bool:
    return session.get(f"{portal}/", allow_redirects=False, timeout=30).status_code == 200


def refusals(reason: str) -> int:
    return AuditEvent.objects.filter(verb="auth.login_failed", payload__reason=reason).count()


def test_a_callback_this_browser_did_not_start_is_refused(idp):
    s = requests.Session()
    r = s.get(f"{idp.portal}/sso/callback/?code=forged&state=forged", timeout=30)
    assert r.status_code == 400 and "not valid or has expired" in r.text
    assert not signed_in(s, idp.portal)
    assert refusals("bad_state") == 1
    assert s.get(f"{idp.portal}/sso/callback/", timeout=30).status_code == 400  # no code at all


def test_a_tampered_state_or_code_is_refused_and_a_used_callback_cannot_be_replayed(idp):
    started = idp.sign_in("priya", stop_at_callback=True)
    assert started.callback_url
    s = started.session
    r = s.get(with_params(started.callback_url, state="not-the-state"), timeout=30)
    assert r.status_code == 400 and "could not be verified" in r.text
    r = s.get(with_params(started.callback_url, code="tampered-code"), timeout=30)
    assert r.status_code == 400 and "refused to complete" in r.text
    assert not signed_in(s, idp.portal)
    assert not User.objects.filter(username="priya").exists()

    done = idp.sign_in("priya", stop_at_callback=True)
    assert done.session.get(done.callback_url, timeout=30).status_code == 200  # lands on the catalog
    assert signed_in(done.session, idp.portal)
    replay = done.session.get(done.callback_url, allow_redirects=False, timeout=30)
    assert replay.status_code == 400  # the state was used up
    assert requests.get(done.callback_url, timeout=30).status_code == 400  # and another browser has none


def test_an_answer_from_another_issuer_or_an_error_from_the_provider_is_refused(idp):
    started = idp.sign_in("priya", stop_at_callback=True)
    assert parse_qs(urlsplit(started.callback_url).query)["iss"] == [idp.provider.issuer]
    r = started.session.get(with_params(started.callback_url, iss="https://evil.example"), timeout=30)
    assert r.status_code == 400 and "another provider" in r.text
    r = started.session.get(f"{idp.portal}/sso/callback/?error=access_denied&state=x", timeout=30)
    assert r.status_code == 400 and "did not sign you in" in r.text
    assert not signed_in(started.session, idp.portal)


def test_a_deactivated_user_loses_sessions_and_tokens_and_cannot_sign_in_again(idp, live_server):
    sso = idp.sign_in("priya")
    assert signed_in(sso.session, idp.portal)
    priya = User.objects.get(username="priya")
    token = token_issue(user=priya).key
    local = UserFactory(username="dave")
    password_session = Client()
    assert password_session.post("/login/", {"username": "dave", "password": PASSWORD}).status_code == 302
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/v1/teams/").status_code == 200

    User.objects.filter(pk__in=[priya.pk, local.pk]).update(is_active=False)

    page = sso.session.get(f"{idp.portal}/", allow_redirects=False, timeout=30)
    assert page.status_code == 302 and "/login/" in page.headers["location"]
    page = password_session.get("/")
    assert page.status_code == 302 and "/login/" in page["Location"]
    assert api.get("/api/v1/teams/").status_code == 401
    again = idp.sign_in("priya")
    assert again.response.status_code == 403 and "deactivated" in again.response.text
    assert not signed_in(again.session, idp.portal)


def test_with_local_passwords_off_only_sso_signs_in(idp, settings):
    settings.GOLDPATH = {**settings.GOLDPATH, "LOCAL_PASSWORDS": False}
    UserFactory(username="dave")
    page = Client().get("/login/").content.decode()
    assert "Sign in with Test IdP" in page and 'name="password"' not in page
    response = Client().post("/login/", {"username": "dave", "password": PASSWORD})
    assert response.status_code == 200 and "Password sign-in is turned off" in response.content.decode()
    assert "_auth_user_id" not in response.wsgi_request.session
    api = APIClient().post("/api/v1/auth/token/", {"username": "dave", "password": PASSWORD}, format="json")
    assert api.status_code == 400 and "Password sign-in is turned off" in api.content.decode()
    assert refusals("local_passwords_off") == 2
    # single sign-on still works
    assert signed_in(idp.sign_in("priya").session, idp.portal)


@pytest.mark.django_db
def test_sso_unconfigured_means_no_button_and_404(settings):
    settings.GOLDPATH = {**settings.GOLDPATH, "OIDC_ISSUER": "", "LOCAL_PASSWORDS": False}
    client = Client()
    page = client.get("/login/").content.decode()
    assert "sso-login" not in page and 'name="password"' in page  # passwords cannot be turned off without SSO
    for path in ("/sso/login/", "/sso/callback/?code=x&state=y"):
        assert client.get(path).status_code == 404


@pytest.mark.django_db
def test_an_unreachable_provider_is_a_page_not_a_500(settings):
    settings.GOLDPATH = {
        **settings.GOLDPATH,
        "OIDC_ISSUER": "http://127.0.0.1:9",  # nothing listens there
        "OIDC_CLIENT_ID": "goldpath",
        "OIDC_CLIENT_SECRET": "secret",
        "OIDC_TIMEOUT_S": 2,
    }
    client = Client()
    assert "sso-login" in client.get("/login/").content.decode()
    response = client.get("/sso/login/")
    assert response.status_code == 502 and "could not be reached" in response.content.decode()
    response = client.get("/sso/callback/?code=x&state=y")
    assert response.status_code in (400, 502)
