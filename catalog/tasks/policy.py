"""Policy tasks: expire grants (periodic) and re-check a tool use at the moment a worker acts."""

from __future__ import annotations

from celery import shared_task
from django.contrib.auth import get_user_model

from ..models import AITool
from ..policy import PolicyContext
from ..services.access import grants_expire as _grants_expire
from ..services.access import tool_use_record


@shared_task(name="catalog.tasks.policy.grants_expire", queue="default")
def grants_expire() -> dict:
    """Remove expired grants and warn 7 days before (idempotent)."""
    return _grants_expire()


@shared_task(name="catalog.tasks.policy.check_use", queue="default")
def check_use(user_id: int, tool_id: int, classification: str = "internal", action: str = "use") -> dict:
    """Take the decision again in the worker and record this use (allowed or denied).

    The smallest real "act on a tool" task: features that act (workspace builds, agent launches)
    do the same as their first step, through `tool_use_record`, and stop when it denies.
    """
    user = get_user_model().objects.filter(pk=user_id).first()
    tool = AITool.objects.filter(pk=tool_id).first()
    if user is None or tool is None:
        return {"allowed": False, "reasons": [{"code": "missing", "message": "user or tool no longer exists"}]}
    decision = tool_use_record(user, tool, PolicyContext(classification=classification), action)
    return decision.as_dict()
