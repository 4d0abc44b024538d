"""Tool use: decide at the moment of use and audit every use, allowed or denied, with its policy decision."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from .. import audit
from ..models import AITool
from ..policy import Decision, PolicyContext, decide
from ..usage import record_usage


def tool_use_record(
    user: Any,
    tool: AITool,
    context: PolicyContext | None = None,
    action: str = "use",
    *,
    actor: Any = None,
    subject: Any = None,
) -> Decision:
    """Decide, at the moment of use, and write the audit event of this use (allowed or denied).

    Call it inside the Celery task that acts, right before acting; act only if the returned
    decision is allowed. `action` names what is done (e.g. `workspace.start`, `agent_run.launch`);
    `actor` defaults to the user (pass e.g. `agent:<run id>` for an agent identity); `subject` is the
    object acted for (a workspace, an agent run), recorded in the payload.
    The tool is re-read from the database so a ban between request and execution is seen.
    """
    context = context or PolicyContext()
    fresh = AITool.objects.filter(pk=tool.pk).first() or tool
    decision = decide(user, fresh, context)
    payload: dict[str, Any] = {
        "action": action,
        "user": getattr(user, "username", None),
        "tool": fresh.slug,
        "allowed": decision.allowed,
        "reasons": [r.as_dict() for r in decision.reasons],
        "grants": decision.grant_ids,
        **context.as_dict(),
    }
    if subject is not None:
        payload["subject"] = {"type": subject._meta.model_name, "id": str(subject.pk), "repr": str(subject)[:200]}
    with transaction.atomic():
        audit.record(
            actor=actor if actor is not None else user,
            verb="tool.used" if decision.allowed else "tool.use_denied",
            target=fresh,
            payload=payload,
        )
        if not decision.allowed:
            record_usage(
                "policy_denied",
                user=user,
                tool=fresh,
                template=getattr(context, "template", None),
                outcome=(decision.reasons[0].code if decision.reasons else ""),
            )
    return decision


__all__ = ["tool_use_record"]
