"""Who is on the other end of a WebSocket: a signed-in browser or a client with an API token.

The browser is known by its session cookie (same-origin only); the client by `Authorization: Token <key>` (the
API's expiring tokens, catalog.api_tokens).

A cookie arrives with any cross-site WebSocket a browser opens (no CORS preflight guards it), so a cookie counts
only when the Origin header names this very host (cross-site WebSocket hijacking); a token needs no Origin."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from rest_framework.exceptions import AuthenticationFailed

from ..api_tokens import ExpiringTokenAuthentication


def header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


def same_origin(scope: dict[str, Any]) -> bool:
    origin, host = header(scope, b"origin"), header(scope, b"host")
    if not origin or not host:
        return False
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc.lower() == host.lower()


@database_sync_to_async
def _token_user(key: str) -> Any:
    try:
        user, _token = ExpiringTokenAuthentication().authenticate_credentials(key)
    except AuthenticationFailed:
        return None
    return user


class ClientAuthMiddleware:
    """Runs after Channels' session auth: a token header wins; a session user needs a same-origin request."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        scope = dict(scope)
        auth = header(scope, b"authorization")
        if auth.startswith("Token "):
            user = await _token_user(auth[6:].strip())
            scope["user"] = user or AnonymousUser()
            scope["goldpath_client"] = "token"
        else:
            user = scope.get("user")
            if user is not None and user.is_authenticated and not same_origin(scope):
                scope["user"] = AnonymousUser()
            scope["goldpath_client"] = "browser"
        return await self.inner(scope, receive, send)


def client_auth_stack(inner: Any) -> Any:
    return AuthMiddlewareStack(ClientAuthMiddleware(inner))
