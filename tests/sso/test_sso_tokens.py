"""The ID token check is stricter than mozilla-django-oidc's default: issuer (from the real provider's discovery),
audience, expiry, RS256 only. Tokens here are signed with a key made by the test, as a forger would."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import SuspiciousOperation

from catalog.sso.backend import GoldpathOIDCBackend

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def token(idp, **changes) -> str:
    now = int(time.time())
    claims = {"iss": idp.provider.issuer, "aud": idp.provider.client_id, "sub": "u-1", "iat": now, "exp": now + 300}
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": "test"})


def test_only_a_token_for_us_from_our_issuer_and_unexpired_is_accepted(idp):
    backend = GoldpathOIDCBackend()
    public = KEY.public_key()
    assert backend._verify_jws(token(idp), public)["sub"] == "u-1"
    for bad in (
        token(idp, aud="another-client"),
        token(idp, iss="https://evil.example"),
        token(idp, exp=int(time.time()) - 3600),
        token(idp, exp=None),
        token(idp, aud=[idp.provider.client_id, "another-client"]),  # several audiences and no azp naming us
        jwt.encode({"sub": "u-1"}, "a-shared-secret-of-at-least-32-bytes", algorithm="HS256"),
        "not-a-token",
    ):
        with pytest.raises(SuspiciousOperation):
            backend._verify_jws(bad, public)


def test_a_token_signed_by_a_key_the_provider_does_not_publish_is_refused(idp):
    with pytest.raises(SuspiciousOperation, match="not signed by a key of the provider"):
        GoldpathOIDCBackend().retrieve_matching_jwk(token(idp))
