"""API tokens: DRF's authtoken (one token per user) with an expiry by `created`, listing and revoking.

The token's primary key is the secret itself, so a token is named in the API by a digest of it
(`token_id`) and shown by its last four characters, never whole.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from . import audit
from .conf import goldpath_settings


def token_ttl() -> timedelta:
    return timedelta(days=int(goldpath_settings.TOKEN_TTL_DAYS))


def token_expires(token: Token) -> datetime:
    return token.created + token_ttl()


def token_is_expired(token: Token) -> bool:
    return timezone.now() >= token_expires(token)


def token_id(token: Token) -> str:
    """A stable, non-secret name for a token (its key is its primary key)."""
    return hashlib.sha256(token.key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TokenInfo:
    id: str
    label: str
    created: datetime
    expires: datetime
    expired: bool


def token_info(token: Token) -> TokenInfo:
    return TokenInfo(
        id=token_id(token),
        label=f"…{token.key[-4:]}",
        created=token.created,
        expires=token_expires(token),
        expired=token_is_expired(token),
    )


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF token auth that refuses a token older than GOLDPATH["TOKEN_TTL_DAYS"] (401)."""

    def authenticate_credentials(self, key: str):
        user, token = super().authenticate_credentials(key)
        if token_is_expired(token):
            raise AuthenticationFailed("Token has expired; sign in again for a new one.")
        return user, token


def tokens_of(user) -> list[Token]:
    return list(Token.objects.filter(user=user))


def token_issue(*, user) -> Token:
    """The user's token; an expired one is replaced by a fresh one."""
    with transaction.atomic():
        token = Token.objects.select_for_update().filter(user=user).first()
        if token is not None and not token_is_expired(token):
            return token
        rotated = token is not None
        if token is not None:
            token.delete()
        token = Token.objects.create(user=user)
        audit.record(
            actor=user,
            verb="token.created",
            target=user,
            target_repr=user.username,
            payload={"ref": token_id(token), "replaced_expired": rotated},
        )
        return token


def token_revoke(*, token: Token, actor) -> None:
    with transaction.atomic():
        ident = token_id(token)
        token.delete()
        audit.record(
            actor=actor,
            verb="token.revoked",
            target=token.user,
            target_repr=token.user.username,
            payload={"ref": ident},
        )


def token_rotate(*, user) -> Token:
    """A fresh token for the signed-in user (the page's "new token"): the old one stops working at once.
    This is how people who sign in with SSO, and have no password, get a token for the API and the CLI."""
    with transaction.atomic():
        for token in Token.objects.select_for_update().filter(user=user):
            token_revoke(token=token, actor=user)
        return token_issue(user=user)


def token_of(user, ident: str) -> Token | None:
    """The caller's own token with this id, or None (another user's token is never found)."""
    return next((t for t in tokens_of(user) if token_id(t) == ident), None)
