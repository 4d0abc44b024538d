"""Plug points for features that arrive later (templates, workspaces, agent runs).

1. Template resolver, for the policy simulator (`POST /api/v1/authz/check/` with `"template": "<slug>"`)
   and pages. Goldpath's own golden paths (`WorkspaceTemplate`) are always resolved (built in); register a
   resolver for templates of your own:

       from catalog import policy_hooks
       policy_hooks.register_template_resolver(lambda slug: WorkspaceTemplate.objects.filter(slug=slug).first())

   The resolver returns None for an unknown slug, or an object with `slug` and `offers_tool(tool) -> bool`
   (see catalog/policy.py). Register it in your app module's import path (e.g. at the bottom of your
   models or in `CatalogConfig.ready`).

2. Out-of-policy providers: objects that use a tool which is no longer usable (banned, not approved,
   review expired, grant revoked or expired). `GET /api/v1/out-of-policy/` and the out-of-policy page
   list what every provider yields; `POST /api/v1/out-of-policy/bulk/` dispatches a bulk action.

       class WorkspaceProvider:
           kind = "workspace"
           actions = ("stop",)
           def items(self, user):          # only what `user` may read (use catalog.selectors)
               yield OutOfPolicyItem(kind="workspace", id=str(ws.pk), label=..., tool=tool.slug,
                                     team=team.slug, owner=ws.owner.username, reasons=[Reason(...)], url=...)
           def act(self, *, actor, action, ids, reason):   # platform engineers only (checked before)
               return {"done": [...], "failed": {id: "message"}}

       policy_hooks.register_out_of_policy_provider(WorkspaceProvider())

   Built in (catalog.out_of_policy, which merges them with the providers registered here): grants (kind
   "grant", action "revoke"), workspaces (kind "workspace", action "stop") and agent runs (kind "agent_run",
   action "cancel": cancels the run's agent group). A registered provider replaces a built-in one of its kind.

This module only keeps the registrations: it imports the policy's vocabulary and the models, never the
features that use it, so any of them may import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .models import WorkspaceTemplate
from .policy import Reason

_template_resolvers: list[Callable[[str], Any]] = []
_providers: dict[str, OutOfPolicyProvider] = {}


def register_template_resolver(resolver: Callable[[str], Any]) -> None:
    if resolver not in _template_resolvers:
        _template_resolvers.append(resolver)


def workspace_template(slug: str) -> Any:
    """The built-in resolver: Goldpath's own golden paths (`WorkspaceTemplate`, which offers `slug` and
    `offers_tool`), by slug."""
    return WorkspaceTemplate.objects.filter(slug=slug).first()


def resolve_template(slug: str) -> Any:
    """The template object for a slug: the registered resolvers' answer first (a host may add its own
    templates), then Goldpath's golden paths; None when nobody knows it."""
    for resolver in [*_template_resolvers, workspace_template]:
        template = resolver(slug)
        if template is not None:
            return template
    return None


@dataclass
class OutOfPolicyItem:
    kind: str
    id: str
    label: str
    tool: str
    team: str | None
    owner: str | None
    reasons: list[Reason] = field(default_factory=list)
    url: str = ""
    actions: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "label": self.label,
            "tool": self.tool,
            "team": self.team,
            "owner": self.owner,
            "reasons": [r.as_dict() for r in self.reasons],
            "url": self.url,
            "actions": list(self.actions),
        }


class OutOfPolicyProvider(Protocol):
    kind: str
    actions: tuple[str, ...]

    def items(self, user: Any) -> Iterable[OutOfPolicyItem]: ...

    def act(self, *, actor: Any, action: str, ids: list[str], reason: str) -> dict[str, Any]: ...


def register_out_of_policy_provider(provider: OutOfPolicyProvider) -> None:
    _providers[provider.kind] = provider


def registered_out_of_policy_providers() -> dict[str, OutOfPolicyProvider]:
    """The providers registered by kind (the full set, built-in ones included: catalog.out_of_policy)."""
    return dict(_providers)
