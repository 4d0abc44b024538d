"""Writing audit events: called by services inside their transaction, from web and workers alike.

Reading them: catalog.audit_log.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from .context import get_request_id
from .masking import mask_secrets
from .models import AuditEvent


def actor_label(actor: Any) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return getattr(actor, "username", None) or str(actor)


def record(
    *,
    actor: Any,
    verb: str,
    target: models.Model | None = None,
    target_type: str | None = None,
    target_id: str | int | None = None,
    target_repr: str | None = None,
    payload: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event. `actor` is a user, a principal string like `agent:12`, or None (system).

    `verb` is `<thing>.<what happened>`, in the past tense (`tool.approved`, `team.member_added`,
    `workspace.stop_requested`): an event records something that happened. Pages show it as words
    (catalog.audit_log.verb_label); tests/test_audit_verbs.py checks the tense of every verb written."""
    user = actor if getattr(actor, "pk", None) is not None and hasattr(actor, "username") else None
    if target is not None:
        target_type = target_type or target._meta.model_name
        target_id = target.pk if target_id is None else target_id
        target_repr = target_repr or str(target)
    return AuditEvent.objects.create(
        actor=user,
        actor_repr=actor_label(actor),
        verb=verb,
        target_type=target_type or "",
        target_id=str(target_id or ""),
        target_repr=(target_repr or "")[:200],
        payload=mask_secrets(payload or {}),
        request_id=get_request_id(),
    )
