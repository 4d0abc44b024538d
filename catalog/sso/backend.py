"""The authentication backend: mozilla-django-oidc's code flow with a strict ID token check and Goldpath's sync.

The authentication backend: mozilla-django-oidc's code flow (PKCE, nonce), with endpoints from discovery, a
strict ID token check, and Goldpath's sign-in service (catalog.sso.sync) in place of its user lookup by email.

It also enforces two things for every sign-in that reaches the backends:
- with local passwords off (GOLDPATH["LOCAL_PASSWORDS"]), a username and password from the network (the login
  page, the admin's login, POST auth/token/) are refused with a readable message (a ValidationError, which the
  login form and the token serializer show as such) before ModelBackend can accept them;
- a deactivated user's session stops working: `get_user` returns nobody for them, like ModelBackend.
"""

from __future__ import annotations

from typing import Any

import jwt
import requests
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.http import HttpRequest
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from rest_framework.exceptions import AuthenticationFailed

from .. import audit
from . import discovery as disco
from .config import SIGN_ALGORITHM, local_passwords_enabled, oidc_setting, sso_enabled
from .sync import sso_sign_in

LOCAL_PASSWORDS_OFF = "Password sign-in is turned off here. Sign in with single sign-on instead."


class LocalPasswordsOff(AuthenticationFailed, ValidationError):
    """A password refused because local passwords are off. Django's forms and DRF serializers show a
    ValidationError as a readable message; DRF's BasicAuthentication (a host's own API may keep it as its
    default) would let a bare ValidationError escape as a 500, and answers 401 for an AuthenticationFailed."""

    def __init__(self) -> None:
        AuthenticationFailed.__init__(self, LOCAL_PASSWORDS_OFF, code="local_passwords_off")
        ValidationError.__init__(self, LOCAL_PASSWORDS_OFF, code="local_passwords_off")


CLOCK_LEEWAY_S = 60


class GoldpathOIDCBackend(OIDCAuthenticationBackend):
    # nothing is read at construction: Django builds backends for every sign-in and every request's session
    # user, and must not need the provider for that
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.UserModel = get_user_model()

    get_settings = staticmethod(oidc_setting)

    # mozilla-django-oidc reads these attributes; they come from GOLDPATH and discovery when used
    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:  # noqa: N802
        return oidc_setting("OIDC_OP_TOKEN_ENDPOINT")

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str:  # noqa: N802
        return oidc_setting("OIDC_OP_USER_ENDPOINT")

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:  # noqa: N802
        return oidc_setting("OIDC_OP_JWKS_ENDPOINT")

    @property
    def OIDC_RP_CLIENT_ID(self) -> str:  # noqa: N802
        return oidc_setting("OIDC_RP_CLIENT_ID")

    @property
    def OIDC_RP_CLIENT_SECRET(self) -> str:  # noqa: N802
        return oidc_setting("OIDC_RP_CLIENT_SECRET")

    OIDC_RP_SIGN_ALGO = SIGN_ALGORITHM
    OIDC_RP_IDP_SIGN_KEY = None

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> Any:
        if "password" in kwargs:
            if request is not None and not local_passwords_enabled():
                audit.record(
                    actor="anonymous",
                    verb="auth.login_failed",
                    target_type="user",
                    target_repr=str(kwargs.get("username") or "")[:150],
                    payload={"username": kwargs.get("username") or "", "reason": "local_passwords_off"},
                )
                raise LocalPasswordsOff()
            return None
        # only the callback view passes a nonce; any other caller is not an OIDC sign-in
        if request is None or "nonce" not in kwargs or not sso_enabled():
            return None
        return super().authenticate(request, **kwargs)

    def get_user(self, user_id: Any) -> Any:
        user = super().get_user(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None

    # it only signs people in: permissions stay with ModelBackend and guardian (no second answer, no extra queries)
    def get_user_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        return set()

    def get_group_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        return set()

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        return set()

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return False

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return False

    def with_perm(self, perm: Any, is_active: bool = True, include_superusers: bool = True, obj: Any = None) -> Any:
        return self.UserModel._default_manager.none()

    # --- ID token: signature by the provider's key, issuer, audience, expiry, nonce ---------------------------

    def retrieve_matching_jwk(self, token: str) -> jwt.PyJWK:
        header = self._header(token)
        kid, alg = header.get("kid"), header.get("alg")
        for refresh in (False, True):  # a key id we do not know: the provider may have rotated its keys
            keys = [
                k
                for k in disco.jwks(refresh=refresh)["keys"]
                if isinstance(k, dict)
                and k.get("kty") == "RSA"
                and k.get("use", "sig") == "sig"
                and k.get("alg", alg) == alg
                and (kid is None or k.get("kid") == kid)
            ]
            if len(keys) == 1:
                return jwt.PyJWK(keys[0])
            if len(keys) > 1:
                raise SuspiciousOperation("The ID token does not say which of the provider's keys signed it.")
        raise SuspiciousOperation("The ID token was not signed by a key of the provider.")

    @staticmethod
    def _header(token: Any) -> dict[str, Any]:
        if not isinstance(token, str) or not token:
            raise SuspiciousOperation("The provider returned no ID token.")
        try:
            return jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation("The ID token is not a signed token.") from exc

    def get_payload_data(self, token: str, key: Any) -> dict[str, Any]:
        return self._verify_jws(token, key)

    def _verify_jws(self, payload: str, key: Any) -> dict[str, Any]:
        if self._header(payload).get("alg") != SIGN_ALGORITHM:
            raise SuspiciousOperation(f"The ID token is not signed with {SIGN_ALGORITHM}.")
        client_id = self.OIDC_RP_CLIENT_ID
        try:
            claims = jwt.decode(
                payload,
                key,
                algorithms=[SIGN_ALGORITHM],
                audience=client_id,
                issuer=disco.discovery()["issuer"],
                leeway=CLOCK_LEEWAY_S,
                options={"require": ["iss", "aud", "sub", "exp", "iat"]},
            )
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"The ID token was refused: {exc}.") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        # OIDC Core 3.1.3.7: with several audiences azp must name us; an azp naming another party never passes
        if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != client_id:
            raise SuspiciousOperation("The ID token was issued to another party.")
        return claims

    # --- claims and the user ----------------------------------------------------------------------------------

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The ID token's claims, completed by the userinfo endpoint's (which must name the same subject)."""
        claims = dict(payload)
        if disco.discovery().get("userinfo_endpoint") and access_token:
            userinfo = super().get_userinfo(access_token, id_token, payload)
            if not isinstance(userinfo, dict) or userinfo.get("sub") != payload.get("sub"):
                raise SuspiciousOperation("The provider's userinfo names another subject than the ID token.")
            claims.update(userinfo)
        return claims

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        claims = self.get_userinfo(access_token, id_token, payload)
        return sso_sign_in(issuer=disco.discovery()["issuer"], claims=claims)


# what a sign-in through the provider can fail with, besides SignInRefused; the callback view shows each as a page
PROVIDER_ERRORS: tuple[type[Exception], ...] = (
    SuspiciousOperation,
    disco.DiscoveryError,
    requests.RequestException,  # includes a body that is not JSON
)
