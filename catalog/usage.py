"""Recording usage events: services call `record_usage(...)` inside their own transaction.

    record_usage("workspace_created", user=ws.owner, team=ws.team, template=ws.template, key=f"workspace:{ws.pk}:created")

- `kind`: a `UsageKind` value (workspace_created, build_succeeded, agent_run_finished, policy_denied...).
- `user`, `team`, `tool`: portal objects or slugs/usernames (imports name tools the portal may not know).
  With a user but no team, the user's first team (by slug) is used.
- `template`: an object with a `slug` (template or template version) or a slug.
- `duration_s`, `cost`: numbers; with no cost, a `tool_version` whose `per_use_cost` is set prices one use
  of kinds in `PER_USE_KINDS`.
- `input_tokens`, `output_tokens`, `model_cost`: what a model call through the gateway used and cost (the
  gateway records one `model_call` event per call); kept apart from `cost` (per-use price) so reports show
  both.
- `key`: idempotency key. Give a deterministic one (`build:12:succeeded`) wherever a retry could record
  the same fact twice: a second call with the same key stores nothing. Default: a fresh random key.
- `outcome`: agent run outcome, build transition (`start`, `stop`, `delete`) or denial reason.

Returns the stored event, or None when the key was already recorded. Insert uses ON CONFLICT DO NOTHING,
so a duplicate never aborts the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from django.utils import timezone

from .models import AITool, Team, UsageEvent, UsageKind

PER_USE_KINDS = frozenset({UsageKind.AGENT_RUN_FINISHED, UsageKind.TOOL_USED})


def _slug(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return getattr(value, "slug", "") or ""


def _obj(value: Any, model) -> Any:
    return value if isinstance(value, model) else None


def _user_team(user: Any) -> Team | None:
    if user is None or getattr(user, "pk", None) is None:
        return None
    return Team.objects.filter(group__user=user).order_by("slug").first()


def record_usage(
    kind: str,
    *,
    user: Any = None,
    team: Any = None,
    tool: Any = None,
    template: Any = None,
    duration_s: float | None = None,
    cost: Decimal | float | None = None,
    source: str = "portal",
    at: dt.datetime | None = None,
    key: str | None = None,
    outcome: str = "",
    tool_version: Any = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    model_cost: Decimal | float | None = None,
    **numbers: Any,
) -> UsageEvent | None:
    if kind not in UsageKind.values:
        raise ValueError(f"unknown usage kind {kind!r}")
    at = at or timezone.now()
    if timezone.is_naive(at):
        at = timezone.make_aware(at, dt.UTC)
    user_obj = user if getattr(user, "pk", None) is not None and hasattr(user, "username") else None
    if team is None and user_obj is not None:
        team = _user_team(user_obj)
    if tool is None and tool_version is not None:
        tool = tool_version.tool
    if cost is None and tool_version is not None and kind in PER_USE_KINDS:
        cost = getattr(tool_version, "per_use_cost", None)
    allowed_numbers = {"reported_users", "engaged_users", "suggestions", "acceptances"}
    unknown = set(numbers) - allowed_numbers
    if unknown:
        raise TypeError(f"unknown usage fields: {sorted(unknown)}")
    event = UsageEvent(
        at=at,
        day=at.astimezone(dt.UTC).date(),
        kind=kind,
        user=user_obj,
        user_ref=(user_obj.username if user_obj is not None else (user if isinstance(user, str) else ""))[:150],
        team=_obj(team, Team),
        team_slug=_slug(team)[:50],
        tool=_obj(tool, AITool),
        tool_slug=_slug(tool)[:50],
        template_slug=_slug(template)[:50],
        outcome=(outcome or "")[:32],
        duration_s=duration_s,
        cost=Decimal(str(cost)) if cost is not None else None,
        input_tokens=max(0, int(input_tokens)) if input_tokens is not None else None,
        output_tokens=max(0, int(output_tokens)) if output_tokens is not None else None,
        model_cost=Decimal(str(model_cost)) if model_cost is not None else None,
        source=source[:64],
        key=(key or f"{kind}:{uuid.uuid4().hex}")[:200],
        **numbers,
    )
    if UsageEvent.objects.filter(key=event.key).exists():
        return None
    UsageEvent.objects.bulk_create([event], ignore_conflicts=True)
    return UsageEvent.objects.filter(key=event.key).first()
