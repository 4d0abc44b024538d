"""The issuer's discovery document (`<issuer>/.well-known/openid-configuration`) and its signing keys (JWKS).

Both are fetched on first use and kept in Django's cache for OIDC_DISCOVERY_TTL_S (shared by every process
when the host's cache is shared). Keys are fetched again at once when an ID token names a key id we do not
have (the provider rotated its keys). A provider that cannot be reached or answers nonsense is a
`DiscoveryError` with a readable message; the views turn it into a page, never a 500.
"""

from __future__ import annotations

import hashlib
from typing import Any

import requests
from django.core.cache import cache

from ..conf import goldpath_settings

REQUIRED = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")  # userinfo is optional
MAX_DOCUMENT_BYTES = 512 * 1024


def issuer() -> str:
    """The configured issuer URL (no trailing slash); blank when SSO is not configured."""
    return (goldpath_settings.OIDC_ISSUER or "").strip().rstrip("/")


class DiscoveryError(RuntimeError):
    """The provider's discovery document or keys could not be used; the message is meant for people."""


def _cache_key(kind: str, issuer_url: str) -> str:
    return f"goldpath:sso:{kind}:{hashlib.sha256(issuer_url.encode()).hexdigest()[:32]}"


def _get_json(url: str, what: str) -> dict[str, Any]:
    try:
        response = requests.get(url, timeout=goldpath_settings.OIDC_TIMEOUT_S, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise DiscoveryError(f"The sign-in provider could not be reached ({what}).") from exc
    if response.status_code != 200:
        raise DiscoveryError(f"The sign-in provider answered {response.status_code} for its {what}.")
    if len(response.content) > MAX_DOCUMENT_BYTES:
        raise DiscoveryError(f"The sign-in provider's {what} is too large.")
    try:
        document = response.json()
    except ValueError as exc:
        raise DiscoveryError(f"The sign-in provider's {what} is not JSON.") from exc
    if not isinstance(document, dict):
        raise DiscoveryError(f"The sign-in provider's {what} is not a JSON object.")
    return document


def fetch_discovery(issuer_url: str) -> dict[str, Any]:
    """Fetch and check the discovery document (OpenID Connect Discovery 1.0, section 4)."""
    document = _get_json(f"{issuer_url}/.well-known/openid-configuration", "discovery document")
    missing = [key for key in REQUIRED if not isinstance(document.get(key), str) or not document.get(key)]
    if missing:
        raise DiscoveryError(f"The sign-in provider's discovery document lacks {', '.join(missing)}.")
    if document["issuer"].rstrip("/") != issuer_url:
        raise DiscoveryError("The sign-in provider's discovery document names another issuer.")
    methods = document.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise DiscoveryError("The sign-in provider does not support PKCE with S256.")
    return document


def discovery() -> dict[str, Any]:
    """The configured issuer's discovery document, from the cache when fresh."""
    issuer_url = issuer()
    if not issuer_url:
        raise DiscoveryError("Single sign-on is not configured.")
    key = _cache_key("discovery", issuer_url)
    document = cache.get(key)
    if document is None:
        document = fetch_discovery(issuer_url)
        cache.set(key, document, goldpath_settings.OIDC_DISCOVERY_TTL_S)
    return document


def jwks(*, refresh: bool = False) -> dict[str, Any]:
    """The provider's signing keys (a JWK set), from the cache unless `refresh`."""
    issuer_url = issuer()
    key = _cache_key("jwks", issuer_url)
    keys = None if refresh else cache.get(key)
    if keys is None:
        keys = _get_json(discovery()["jwks_uri"], "signing keys")
        if not isinstance(keys.get("keys"), list):
            raise DiscoveryError("The sign-in provider's signing keys are not a JWK set.")
        cache.set(key, keys, goldpath_settings.OIDC_DISCOVERY_TTL_S)
    return keys


def forget() -> None:
    """Drop the cached document and keys of the configured issuer (tests, or after changing providers)."""
    issuer_url = issuer()
    cache.delete_many([_cache_key("discovery", issuer_url), _cache_key("jwks", issuer_url)])
