"""Agent identities: a principal `agent:<run id>` acting for the requester, with a short-lived token.

Only the token's SHA-256 is stored; a token is bound to one run, expires after AGENT_TOKEN_TTL_S (or the
run's time limit plus a minute, whichever is shorter) and is revoked when the run ends. The API accepts it
(`Authorization: Agent <token>`) only through the run's own socket and only on that run's own agent
endpoints (catalog/api/agent_auth.py).

A run also gets a model gateway credential (`gpg_...`, purpose `gateway`): the API key its CLI sends to the
model gateway (catalog/gateway), in place of a vendor key. Each lookup accepts only its own purpose, so
neither credential works in the other's place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from django.utils import timezone

from ..conf import goldpath_settings
from ..models import AgentIdentityToken, AgentRun, TokenPurpose

PREFIX = "gpa_"
GATEWAY_PREFIX = "gpg_"


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _issue(run: AgentRun, prefix: str, purpose: str, max_ttl_s: int) -> str:
    raw = prefix + secrets.token_urlsafe(32)
    ttl = min(int(max_ttl_s), int(run.group.time_limit_s) + 60)
    AgentIdentityToken.objects.create(
        run=run, purpose=purpose, token_sha256=_hash(raw), expires_at=timezone.now() + dt.timedelta(seconds=ttl)
    )
    return raw


def token_issue(run: AgentRun) -> str:
    """A new agent identity token for the run (returned once, in clear, for the sandbox environment)."""
    return _issue(run, PREFIX, TokenPurpose.AGENT, goldpath_settings.AGENT_TOKEN_TTL_S)


def gateway_token_issue(run: AgentRun) -> str:
    """A new model gateway credential for the run: the API key its CLI sends to the gateway (returned once)."""
    return _issue(run, GATEWAY_PREFIX, TokenPurpose.GATEWAY, goldpath_settings.GATEWAY_TOKEN_TTL_S)


def token_revoke(run: AgentRun, purpose: str | None = None) -> int:
    """Revoke the run's live credentials (of one purpose: the gateway credential ends when the agent exits,
    before the test command runs; everything ends with the run)."""
    tokens = AgentIdentityToken.objects.filter(run=run, revoked_at__isnull=True)
    if purpose is not None:
        tokens = tokens.filter(purpose=purpose)
    return tokens.update(revoked_at=timezone.now())


def run_for_token(raw: str) -> AgentRun | None:
    """The run a live agent identity token belongs to, or None (unknown, expired, revoked, or a gateway
    credential)."""
    if not raw or not raw.startswith(PREFIX):
        return None
    row = (
        AgentIdentityToken.objects.select_related("run__group__requester")
        .filter(
            token_sha256=_hash(raw),
            purpose=TokenPurpose.AGENT,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .first()
    )
    return row.run if row else None


def gateway_token_hash(raw: str) -> str | None:
    """The stored hash a gateway credential would have, or None when `raw` cannot be one (an agent identity
    token, a vendor key, nothing)."""
    if not raw or not raw.startswith(GATEWAY_PREFIX) or len(raw) > 200:
        return None
    return _hash(raw)


def run_for_gateway_token(raw: str) -> AgentRun | None:
    """The run a live gateway credential belongs to, or None (unknown, expired, revoked, or an agent identity
    token). The gateway's per-call admission reads the same with one statement (catalog.gateway.context)."""
    digest = gateway_token_hash(raw)
    if digest is None:
        return None
    row = (
        AgentIdentityToken.objects.select_related(
            "run__group__requester", "run__group__team", "run__tool", "run__tool_version"
        )
        .filter(
            token_sha256=digest,
            purpose=TokenPurpose.GATEWAY,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
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
