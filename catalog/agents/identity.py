"""Agent identities: a principal `agent:<run id>` acting for the requester, with a short-lived token.

Only the token's SHA-256 is stored; a token is bound to one run, expires after AGENT_TOKEN_TTL_S (or the
run's time limit plus a minute, whichever is shorter) and is revoked when the run ends. The API accepts it
(`Authorization: Agent <token>`) only through the run's own socket and only on that run's own agent
endpoints (catalog/api/agent_auth.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from django.utils import timezone

from ..conf import goldpath_settings
from ..models import AgentIdentityToken, AgentRun

PREFIX = "gpa_"


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_issue(run: AgentRun) -> str:
    """A new token for the run (returned once, in clear, for the sandbox environment)."""
    raw = PREFIX + secrets.token_urlsafe(32)
    ttl = min(int(goldpath_settings.AGENT_TOKEN_TTL_S), int(run.group.time_limit_s) + 60)
    AgentIdentityToken.objects.create(
        run=run, token_sha256=_hash(raw), expires_at=timezone.now() + dt.timedelta(seconds=ttl)
    )
    return raw


def token_revoke(run: AgentRun) -> int:
    return AgentIdentityToken.objects.filter(run=run, revoked_at__isnull=True).update(revoked_at=timezone.now())


def run_for_token(raw: str) -> AgentRun | None:
    """The run a live token belongs to, or None (unknown, expired or revoked)."""
    if not raw or not raw.startswith(PREFIX):
        return None
    row = (
        AgentIdentityToken.objects.select_related("run__group__requester")
        .filter(token_sha256=_hash(raw), revoked_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )
    return row.run if row else None


class AgentPrincipal:
    """The request.user of an agent call: not a Django user; it acts for the run's requester."""

    is_authenticated = True
    is_active = True
    is_superuser = False
    is_staff = False
    is_anonymous = False

    def __init__(self, run: AgentRun):
        self.run = run
        self.on_behalf_of = run.group.requester
        self.username = run.principal
        self.pk = None

    def __str__(self) -> str:
        return self.username


def is_agent(user: Any) -> bool:
    return isinstance(user, AgentPrincipal)
