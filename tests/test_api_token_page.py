"""The API token page: someone who signs in without a password (SSO) gets a token for the CLI and the API; a new
token ends the old one at once, and both changes are audited."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from rest_framework.test import APIClient

from catalog.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _key(html: str) -> str:
    return re.search(r'id="new-token" readonly value="([0-9a-f]+)"', html).group(1)


def _me(key: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/users/me/")


def test_a_user_without_a_password_gets_a_working_token_and_a_new_one_ends_the_old():
    user = UserFactory(username="priya", role="developer")
    user.set_unusable_password()  # as an SSO sign-in creates them
    user.save()
    page = Client()
    page.force_login(user)
    assert "You have no token." in page.get("/account/token/").content.decode()

    first = _key(page.post("/account/token/").content.decode())
    assert _me(first).status_code == 200 and _me(first).json()["username"] == "priya"
    shown = page.get("/account/token/").content.decode()
    assert first not in shown and f"…{first[-4:]}" in shown  # shown once, then only its last characters

    second = _key(page.post("/account/token/").content.decode())
    assert second != first
    assert _me(first).status_code == 401
    assert _me(second).status_code == 200
    verbs = list(AuditEvent.objects.filter(target_repr="priya").values_list("verb", flat=True).order_by("id"))
    assert verbs == ["token.created", "token.revoked", "token.created"]


def test_the_page_needs_a_sign_in():
    answer = Client().post("/account/token/")
    assert answer.status_code == 302 and "/login/" in answer["Location"]
