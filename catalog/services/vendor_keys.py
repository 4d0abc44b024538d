"""Vendor API keys: a team's key for a tool, stored Fernet-encrypted, set and deleted by platform engineers.

The model gateway adds the key upstream; it never enters a sandbox or a workspace. Only the last 4 characters
stay readable; the audit log masks the value.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction

from .. import audit, permissions
from ..agents import crypto
from ..models import AITool, Team, VendorApiKey
from .errors import InvalidInput, NotPermitted

ENV_VAR_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,99}$")
RESERVED_ENV = {"PATH", "HOME", "PYTHONPATH", "LANG", "LD_PRELOAD", "LD_LIBRARY_PATH"}


@transaction.atomic
def vendor_api_key_set(*, team: Team, tool: AITool, actor: Any, env_var: str, value: str) -> VendorApiKey:
    """Store (or replace) a team's key for a tool, Fernet-encrypted; only the last 4 characters stay readable."""
    if not permissions.can_manage_vendor_keys(actor):
        raise NotPermitted("Only platform engineers manage vendor API keys.")
    errors = {}
    env_var = (env_var or "").strip()
    if not ENV_VAR_RE.match(env_var) or env_var in RESERVED_ENV or env_var.startswith("GOLDPATH_"):
        errors["env_var"] = ["Give an upper-case environment variable name (not PATH, HOME or GOLDPATH_*)."]
    value = (value or "").strip()
    if len(value) < 8:
        errors["value"] = ["Give the whole key (8 characters or more)."]
    if errors:
        raise InvalidInput("The vendor API key is not valid.", errors=errors)
    key, created = VendorApiKey.objects.select_for_update().get_or_create(
        team=team, tool=tool, defaults={"env_var": env_var, "ciphertext": "", "created_by": actor}
    )
    key.env_var = env_var
    key.ciphertext = crypto.encrypt(value)
    key.last4 = value[-4:]
    key.created_by = actor
    key.save()
    audit.record(
        actor=actor,
        verb="vendor_api_key.created" if created else "vendor_api_key.replaced",
        target=key,
        payload={"team": team.slug, "tool": tool.slug, "env_var": env_var, "api_key": value, "last4": key.last4},
    )
    return key


@transaction.atomic
def vendor_api_key_delete(*, key: VendorApiKey, actor: Any) -> None:
    if not permissions.can_manage_vendor_keys(actor):
        raise NotPermitted("Only platform engineers manage vendor API keys.")
    audit.record(
        actor=actor,
        verb="vendor_api_key.deleted",
        target=key,
        payload={"team": key.team.slug, "tool": key.tool.slug, "env_var": key.env_var, "last4": key.last4},
    )
    key.delete()
