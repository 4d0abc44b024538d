"""Goldpath's SSO settings, and how mozilla-django-oidc sees them.

mozilla-django-oidc reads `OIDC_*` Django settings; Goldpath keeps its own in `GOLDPATH` (a host sets nothing
else) and takes every endpoint from the issuer's discovery document, so its classes call `oidc_setting` instead.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from ..conf import goldpath_settings
from .discovery import discovery, issuer

CALLBACK_URL_NAME = "goldpath:sso-callback"
SIGN_ALGORITHM = "RS256"
# discovery keys behind mozilla-django-oidc's endpoint settings
ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


def sso_enabled() -> bool:
    """SSO is on when an issuer and a client id are configured."""
    return bool(issuer() and goldpath_settings.OIDC_CLIENT_ID)


def display_name() -> str:
    return goldpath_settings.OIDC_NAME or "SSO"


def local_passwords_enabled() -> bool:
    """Passwords stay on unless turned off; with SSO off they cannot be turned off (nobody could sign in)."""
    return bool(goldpath_settings.LOCAL_PASSWORDS) or not sso_enabled()


def scopes() -> str:
    requested = (goldpath_settings.OIDC_SCOPES or "").split()
    return " ".join(["openid", *[s for s in requested if s != "openid"]])


def use_basic_auth() -> bool:
    """client_secret_basic unless configured otherwise or the provider does not offer it (RFC 8414 default)."""
    method = goldpath_settings.OIDC_TOKEN_AUTH_METHOD
    if method:
        return method == "client_secret_basic"
    offered = discovery().get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    return "client_secret_basic" in offered


def oidc_setting(attr: str, *default: Any) -> Any:
    """A mozilla-django-oidc setting, from GOLDPATH and discovery; anything else from Django's settings."""
    if attr in ENDPOINTS:
        return discovery()[ENDPOINTS[attr]]
    fixed: dict[str, Any] = {
        "OIDC_RP_CLIENT_ID": goldpath_settings.OIDC_CLIENT_ID,
        "OIDC_RP_CLIENT_SECRET": goldpath_settings.OIDC_CLIENT_SECRET,
        "OIDC_RP_SIGN_ALGO": SIGN_ALGORITHM,
        "OIDC_RP_IDP_SIGN_KEY": None,
        "OIDC_RP_SCOPES": scopes(),
        "OIDC_USE_PKCE": True,
        "OIDC_PKCE_CODE_CHALLENGE_METHOD": "S256",
        "OIDC_USE_NONCE": True,
        "OIDC_AUTHENTICATION_CALLBACK_URL": CALLBACK_URL_NAME,
        "OIDC_TIMEOUT": goldpath_settings.OIDC_TIMEOUT_S,
        "OIDC_VERIFY_SSL": True,
        "OIDC_STORE_ACCESS_TOKEN": False,
        "OIDC_STORE_ID_TOKEN": False,
        "OIDC_CREATE_USER": True,
        "OIDC_AUTH_REQUEST_EXTRA_PARAMS": {},
    }
    if attr in fixed:
        return fixed[attr]
    if attr == "OIDC_TOKEN_USE_BASIC_AUTH":
        return use_basic_auth()
    if default:
        return getattr(settings, attr, default[0])
    return getattr(settings, attr)
