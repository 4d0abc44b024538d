"""Forged ID tokens against the backend with the real provider's discovery and keys (alg none, HS256 keyed with the
client secret, another client's token), and every password path with local passwords turned off, including a DRF
view of the host that keeps the host's BasicAuthentication default."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation
from django.test import Client
from rest_framework.authentication import BasicAuthentication
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from catalog.models import AuditEvent
from catalog.sso.backend import GoldpathOIDCBackend
from tests.factories import PASSWORD, UserFactory

User = get_user_model()
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims(idp, **changes) -> dict:
    now = int(time.time())
    base = {
        "iss": idp.provider.issuer,
        "aud": idp.provider.client_id,
        "sub": "u-1002",
        "iat": now,
        "exp": now + 300,
        "nonce": "n-1",
        "groups": ["platform-admins"],
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def provider_kid(idp) -> str:
    """The key id of the provider's real signing key, from its discovery document."""
    document = requests.get(f"{idp.provider.issuer}/.well-known/openid-configuration", timeout=10).json()
    return requests.get(document["jwks_uri"], timeout=10).json()["keys"][0]["kid"]


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_alg_none_and_hs256_keyed_with_the_client_secret_are_refused(idp):
    backend = GoldpathOIDCBackend()
    kid = provider_kid(idp)
    unsigned = f"{b64({'alg': 'none', 'kid': kid})}.{b64(claims(idp))}."
    hs256 = jwt.encode(claims(idp), idp.provider.client_secret, algorithm="HS256", headers={"kid": kid})
    hs256_no_kid = jwt.encode(claims(idp), idp.provider.client_secret, algorithm="HS256")
    # the provider's public key used as an HMAC secret (the classic RS256/HS256 confusion)
    for forged in (unsigned, hs256, hs256_no_kid, f"{b64({'alg': 'RS256', 'kid': kid})}.{b64(claims(idp))}."):
        with pytest.raises(SuspiciousOperation):
            backend.verify_token(forged, nonce="n-1")


def test_a_token_for_another_client_is_refused(idp):
    backend = GoldpathOIDCBackend()
    public = KEY.public_key()

    def signed(**changes) -> str:
        return jwt.encode(claims(idp, **changes), KEY, algorithm="RS256", headers={"kid": "k"})

    assert backend._verify_jws(signed(), public)["sub"] == "u-1002"
    assert backend._verify_jws(signed(azp=idp.provider.client_id), public)["sub"] == "u-1002"
    for bad in (
        signed(aud="another-client"),
        signed(aud=["another-client"]),
        signed(aud=[idp.provider.client_id, "another-client"], azp="another-client"),
        signed(azp="another-client"),  # issued to another party (OIDC Core 3.1.3.7: azp must name us)
        signed(aud=None),
        signed(iss=idp.provider.issuer + "/"),
    ):
        with pytest.raises(SuspiciousOperation):
            backend._verify_jws(bad, public)


@pytest.fixture
def passwords_off(idp, settings):
    settings.GOLDPATH = {**settings.GOLDPATH, "LOCAL_PASSWORDS": False}
    return UserFactory(username="dave", role="admin", is_staff=True, is_superuser=True)


def test_the_admin_login_refuses_passwords(passwords_off):
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": "dave", "password": PASSWORD})
    assert response.status_code == 200 and "Password sign-in is turned off" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/", follow=False).status_code == 302


class HostApi(APIView):
    """A host's own DRF view with the host's default BasicAuthentication (tests/hostproject's REST_FRAMEWORK)."""

    authentication_classes = [BasicAuthentication]

    def get(self, request):
        return Response({"user": request.user.username if request.user.is_authenticated else None})


def test_basic_auth_on_a_host_view_is_refused_with_401_not_a_500(passwords_off):
    """The backend's refusal must not escape as a server error from a host's Basic-auth view."""
    header = "Basic " + base64.b64encode(f"dave:{PASSWORD}".encode()).decode()
    request = APIRequestFactory().get("/api/host/ping/", HTTP_AUTHORIZATION=header)
    response = HostApi.as_view()(request)
    assert response.status_code in (401, 403)
    assert "Password sign-in is turned off" in str(response.data)
    assert AuditEvent.objects.filter(verb="auth.login_failed", payload__reason="local_passwords_off").exists()


def test_the_token_endpoint_and_the_login_page_still_say_why(passwords_off):
    api = APIClient().post("/api/v1/auth/token/", {"username": "dave", "password": PASSWORD}, format="json")
    assert api.status_code == 400 and "Password sign-in is turned off" in api.content.decode()
    form = APIClient().post("/api/v1/auth/token/", {"username": "dave", "password": PASSWORD})  # form-encoded
    assert form.status_code == 400 and "token" not in form.json()
    page = Client().post("/login/", {"username": "dave", "password": PASSWORD})
    assert page.status_code == 200 and "Password sign-in is turned off" in page.content.decode()
