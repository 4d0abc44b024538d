"""Goldpath's navigation: the main links and the Governance menu, each shown to the roles that may use the page.

They use the same predicates the views check, so a link never leads to a 403 and every page someone may use is
linked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse

from .. import permissions as perms

register = template.Library()


def _signed_in(user: Any) -> bool:
    return perms.role_of(user) is not None


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str  # in the `goldpath` namespace
    current_for: frozenset[str]  # url names (without namespace) that highlight the item
    visible: Callable[[Any], bool] = _signed_in


def _item(label: str, url_name: str, *also: str, visible: Callable[[Any], bool] = _signed_in) -> NavItem:
    return NavItem(label, url_name, frozenset({url_name, *also}), visible)


MAIN = (
    _item("Catalog", "tool-list", "tool-detail", "tool-new", "tool-edit", "tool-version-new", "tool-version-edit"),
    _item("Golden paths", "template-gallery", "template-detail", "workspace-new"),
    _item("Workspaces", "workspace-list", "workspace-detail"),
    _item("Agent runs", "agent-groups", "agent-group"),
    _item("Teams", "team-list", "team-detail"),
    _item("Repositories", "repository-list", "repository-edit"),
    _item("Provenance", "provenance"),
)
# Governance pages. Access requests: developers and managers see their teams' (platform engineers decide);
# out of policy: everyone sees what they may read (platform engineers act); the simulator: about yourself,
# managers about their teams, platform engineers and auditors about anyone (catalog.views.access).
GOVERNANCE = (
    _item("Review queue", "review-queue", visible=perms.can_review_tools),
    _item("Access requests", "access-requests"),
    _item("Out of policy", "out-of-policy"),
    _item("Policy simulator", "simulator"),
    _item("Adoption report", "adoption-report", visible=perms.can_read_reports),
    _item("Vendor keys", "vendor-keys", visible=perms.can_manage_vendor_keys),
    _item("Audit log", "audit-log", "audit-log-csv", visible=perms.can_read_audit),
    _item("SSO mappings", "sso-mappings", "sso-mapping-edit", visible=perms.is_admin),
)


def _links(items: tuple[NavItem, ...], user: Any, current: str) -> list[dict[str, Any]]:
    links = []
    for item in items:
        if not item.visible(user):
            continue
        try:
            url = reverse(f"goldpath:{item.url_name}")
        except NoReverseMatch:  # a host that leaves a page out of its URLs
            continue
        links.append({"label": item.label, "url": url, "current": current in item.current_for})
    return links


def navigation(user: Any, current: str) -> dict[str, Any]:
    """The links `user` may follow; `current` is the url name of the page shown (highlighted)."""
    governance = _links(GOVERNANCE, user, current)
    return {
        "main": _links(MAIN, user, current),
        "governance": governance,
        "governance_current": any(link["current"] for link in governance),
    }


@register.simple_tag(takes_context=True)
def goldpath_nav(context) -> dict[str, Any]:
    """`{% goldpath_nav as nav %}`: nav.main, nav.governance (each label, url, current), nav.governance_current."""
    request = context.get("request")
    match = getattr(request, "resolver_match", None)
    current = match.url_name if match is not None and match.namespace.split(":")[0] == "goldpath" else ""
    return navigation(getattr(request, "user", None), current or "")
