"""The out-of-policy bulk action (platform engineers): one service for the page and the API.

The API route is `POST /api/v1/out-of-policy/bulk/`.

The request is checked whole before anything changes (403 for a role that may not act; 400 with field errors for
an unknown kind, an action a selected kind does not offer, no items, or no reason), then every item is acted on
in ONE transaction through its object's own service (which writes that object's audit event), and one
`out_of_policy.bulk_applied` event records the whole action with its reason and results. An item that is no
longer out of policy, or whose own service refuses it now, is reported as failed; the others go ahead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from .. import audit, permissions
from ..out_of_policy import out_of_policy_providers
from .errors import InvalidInput, NotPermitted

MAX_ITEMS = 500


@dataclass(frozen=True)
class BulkRequest:
    action: str
    reason: str
    by_kind: dict[str, list[str]]  # kind -> item ids, in the order given, without duplicates

    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.by_kind.values())


def parse_item(value: str) -> tuple[str, str]:
    """A page's `kind:id` checkbox value."""
    kind, _, item_id = str(value).partition(":")
    return kind, item_id


def out_of_policy_validate(*, actor: Any, action: str, items: Iterable[tuple[str, str]], reason: str) -> BulkRequest:
    """Check a bulk request without acting (the page's confirmation step shows what it would do)."""
    if not permissions.can_act_out_of_policy(actor):
        raise NotPermitted("Only platform engineers act on out-of-policy objects.")
    providers = out_of_policy_providers()
    action = (action or "").strip()
    reason = (reason or "").strip()
    errors: dict[str, list[str]] = {}
    by_kind: dict[str, list[str]] = {}
    unknown: list[str] = []
    for kind, item_id in items:
        kind, item_id = str(kind), str(item_id)
        if kind not in providers:
            unknown.append(kind)
        elif item_id and item_id not in by_kind.setdefault(kind, []):
            by_kind[kind].append(item_id)
    if unknown:
        kinds = ", ".join(sorted(providers))
        errors["items"] = [f"Unknown kind {k!r}; the kinds are {kinds}." for k in sorted(set(unknown))]
    elif not any(by_kind.values()):
        errors["items"] = ["Choose at least one item."]
    elif sum(len(ids) for ids in by_kind.values()) > MAX_ITEMS:
        errors["items"] = [f"At most {MAX_ITEMS} items at once."]
    if not action:
        errors["action"] = ["Choose an action."]
    else:
        refusing = sorted(kind for kind in by_kind if action not in providers[kind].actions)
        if refusing:
            errors["action"] = [
                f"{kind}: choose one of {', '.join(providers[kind].actions) or 'no action'}." for kind in refusing
            ]
    if not reason:
        errors["reason"] = ["Give a reason; it is recorded in the audit log."]
    elif len(reason) > 2000:
        errors["reason"] = ["At most 2000 characters."]
    if errors:
        raise InvalidInput("The bulk action is not valid.", errors=errors)
    return BulkRequest(action=action, reason=reason, by_kind={k: v for k, v in by_kind.items() if v})


@transaction.atomic
def out_of_policy_act(*, actor: Any, action: str, items: Iterable[tuple[str, str]], reason: str) -> dict[str, Any]:
    """Apply `action` to the items (kind, id), all in one transaction. Returns
    `{"action", "reason", "results": {kind: {"done": [ids], "failed": {id: message}}}}`."""
    request = out_of_policy_validate(actor=actor, action=action, items=items, reason=reason)
    providers = out_of_policy_providers()
    results = {
        kind: providers[kind].act(actor=actor, action=request.action, ids=ids, reason=request.reason)
        for kind, ids in request.by_kind.items()
    }
    audit.record(
        actor=actor,
        verb="out_of_policy.bulk_applied",
        target_type="out_of_policy",
        target_repr=f"{request.action} {request.count} item{'s' if request.count != 1 else ''}",
        payload={"action": request.action, "reason": request.reason, "results": results},
    )
    return {"action": request.action, "reason": request.reason, "results": results}
