"""Sign-in hardening: lockout after repeated failures (page and API), its expiry and lifting, audit
events, API token expiry, and listing/revoking one's own tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from catalog.models import AuditEvent
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/login/"
TOKEN = "/api/v1/auth/token/"
TOKENS = "/api/v1/auth/tokens/"


def page_signin(client: Client, username: str, password: str, addr: str = "10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=addr)


def api_signin(username: str, password: str, addr: str = "10.0.0.2"):
    return APIClient().post(TOKEN, {"username": username, "password": password}, format="json", REMOTE_ADDR=addr)


def fail_times(n: int, signin, username: str, **kw) -> None:
    for _ in range(n):
        response = signin(username, "not-the-password", **kw)
        assert response.status_code in (200, 400, 429), response.status_code


def test_page_locks_out_after_ten_failures_even_with_the_right_password(people):
    client = Client()
    for _ in range(9):
        assert page_signin(client, "alice", "wrong-password").status_code == 200
    assert page_signin(client, "alice", PASSWORD).status_code == 302  # still allowed after 9
    client = Client()
    for _ in range(10):
        page_signin(client, "dave", "wrong-password", addr="10.0.0.3")
    response = page_signin(client, "dave", PASSWORD, addr="10.0.0.3")
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302  # not signed in


def test_api_locks_out_after_ten_failures_even_with_the_right_password(people):
    fail_times(10, api_signin, "bob")
    response = api_signin("bob", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.json()["detail"]
    assert not Token.objects.filter(user=people["bob"]).exists()


def test_per_user_lockout_follows_the_user_across_addresses(people):
    for i in range(10):
        api_signin("carol", "wrong", addr=f"10.1.0.{i}")
    assert api_signin("carol", PASSWORD, addr="10.9.9.9").status_code == 429
    # another user from a fresh address is unaffected
    assert api_signin("erin", PASSWORD, addr="10.9.9.9").status_code == 200


def test_per_address_lockout_across_users(people):
    client = Client()
    for name in ("alice", "dave", "bob", "frank", "carol", "erin", "admin", "nobody1", "nobody2", "nobody3"):
        page_signin(client, name, "wrong", addr="10.5.5.5")
    assert page_signin(client, "erin", PASSWORD, addr="10.5.5.5").status_code == 429
    assert api_signin("erin", PASSWORD, addr="10.5.5.5").status_code == 429
    # erin herself is not locked: from another address she signs in
    assert page_signin(Client(), "erin", PASSWORD, addr="10.6.6.6").status_code == 302


def test_lockout_expires_after_the_configured_period(people, settings):
    settings.GOLDPATH = {**settings.GOLDPATH, "LOCKOUT_MINUTES": 15}
    fail_times(10, api_signin, "frank")
    assert api_signin("frank", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=14))
    assert api_signin("frank", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert api_signin("frank", PASSWORD).status_code == 200


def test_lockout_period_is_configurable(people, settings):
    settings.GOLDPATH = {**settings.GOLDPATH, "LOCKOUT_MINUTES": 60}
    fail_times(10, api_signin, "frank")
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=30))
    response = api_signin("frank", PASSWORD)
    assert response.status_code == 429
    assert "60 minutes" in response.json()["detail"]


def test_admin_lifts_a_lockout(people):
    fail_times(10, api_signin, "alice", addr="10.7.7.7")
    assert api_signin("alice", PASSWORD, addr="10.8.8.8").status_code == 429
    call_command("axes_reset_username", "alice")
    assert api_signin("alice", PASSWORD, addr="10.8.8.8").status_code == 200
    call_command("axes_reset_ip", "10.7.7.7")
    assert api_signin("dave", PASSWORD, addr="10.7.7.7").status_code == 200


def test_failures_and_lockout_are_audited_without_passwords(people):
    fail_times(10, api_signin, "dave")
    api_signin("dave", PASSWORD)
    failed = AuditEvent.objects.filter(verb="auth.login_failed", target_repr="dave")
    assert failed.count() == 11  # ten wrong passwords and the refused right one
    assert failed.filter(payload__locked_out=True).count() == 2
    locked = AuditEvent.objects.filter(verb="auth.locked_out")
    assert locked.count() == 1
    event = locked.get()
    assert event.target_repr == "dave" and event.target_id == str(people["dave"].pk)
    assert event.payload["username"] == "dave" and event.payload["failures"] == 10
    for e in AuditEvent.objects.filter(verb__startswith="auth."):
        assert "not-the-password" not in str(e.payload) and PASSWORD not in str(e.payload)
        assert "password" not in e.payload


def test_unknown_username_failures_are_audited_by_name(people):
    api_signin("ghost", "whatever")
    event = AuditEvent.objects.get(verb="auth.login_failed")
    assert event.target_repr == "ghost" and event.target_type == "user" and event.target_id == ""


def test_expired_token_is_refused(people, settings):
    settings.GOLDPATH = {**settings.GOLDPATH, "TOKEN_TTL_DAYS": 30}
    token = api_signin("alice", PASSWORD).json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(TOKENS).status_code == 200
    Token.objects.filter(key=token).update(created=timezone.now() - timedelta(days=31))
    response = client.get(TOKENS)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    # signing in again replaces the expired token with a working one
    fresh = api_signin("alice", PASSWORD).json()["token"]
    assert fresh != token
    client.credentials(HTTP_AUTHORIZATION=f"Token {fresh}")
    assert client.get(TOKENS).status_code == 200


def test_list_and_revoke_own_token(people, api):
    token = Token.objects.create(user=people["alice"])
    client = api(people["alice"])
    body = client.get(TOKENS).json()
    assert body["count"] == 1
    (item,) = body["results"]
    assert set(item) == {"id", "label", "created", "expires", "expired"}
    assert item["label"].endswith(token.key[-4:]) and token.key not in str(body)
    assert item["expired"] is False
    assert client.delete(f"{TOKENS}{item['id']}/").status_code == 204
    assert not Token.objects.filter(user=people["alice"]).exists()
    assert client.get(TOKENS).status_code == 401  # the revoked token no longer works
    assert AuditEvent.objects.filter(verb="token.revoked", target_repr="alice").exists()


def test_cannot_revoke_another_users_token(people, api):
    api(people["bob"])  # bob's token exists
    bob_id = api(people["bob"]).get(TOKENS).json()["results"][0]["id"]
    alice = api(people["alice"])
    assert alice.delete(f"{TOKENS}{bob_id}/").status_code == 404
    assert alice.delete(f"{TOKENS}nonexistent/").status_code == 404
    assert Token.objects.filter(user=people["bob"]).exists()
    assert APIClient().get(TOKENS).status_code == 401
