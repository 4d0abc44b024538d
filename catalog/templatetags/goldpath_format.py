"""Human text for stored values: audit payloads, change summaries, target types, policy reason codes and lists.

Pages load it with `{% load goldpath_format %}` so no page shows a Python repr (`['bob', 'frank']`), an
id (`owner_team: 1`) or an internal code (`no_grant`, `aitool`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django import template
from django.apps import apps

from ..masking import masked_tail

register = template.Library()

# policy reason codes (catalog.policy.REASON_CODES) -> a short label; the reason's message says the rest
REASON_LABELS = {
    "not_authenticated": "Not signed in",
    "user_inactive": "Account deactivated",
    "invalid_classification": "Unknown data classification",
    "tool_banned": "Tool banned",
    "tool_not_approved": "Tool not approved",
    "review_expired": "Approval expired",
    "classification_above_tool": "Data too sensitive for the tool",
    "no_grant": "No grant for your team",
    "grant_expired": "Grant expired",
    "classification_above_grant": "Data too sensitive for the grant",
    "template_does_not_offer_tool": "Not offered by the template",
    "granted": "Granted",
}
# the denials a (new) grant for one of the user's teams can lift; any other reason needs something else
GRANT_FIXABLE = frozenset({"no_grant", "grant_expired", "classification_above_grant"})

TARGET_LABELS = {
    "aitool": "AI tool",
    "accessgrant": "grant",
    "accessrequest": "access request",
    "vendorapikey": "vendor API key",
    "workspacebuild": "build",
    "templateversion": "template version",
    "workspacetemplate": "template",
    "user": "user",
}

FIELD_LABELS = {
    "owner_team": "Owner team",
    "max_data_classification": "Highest data classification",
    "risk_tier": "Risk tier",
    "review_due": "Review due",
    "monthly_price_per_seat": "Monthly price per seat",
    "data_location": "Data location",
    "pricing_note": "Pricing note",
    "approvals_cleared": "Approvals cleared",
    "budget_usd": "Model budget (USD)",
    "expires_at": "Expires",
    "env_var": "Environment variable",
    "last4": "Key ends in",
    "api_key": "Key",
    "changed_fields": "Changed fields",
    "default_branch": "Default branch",
    "data_classification": "Data classification",
    "with_tool": "With the tool",
    "review_state": "Review state",
    "result_keys": "Result keys",
    "pending_canceled": "Pending runs canceled",
    "previous_version_id": "Previous version",
    "url": "URL",
}
TEAM_ID_FIELDS = frozenset({"owner_team"})
MAX_ITEMS = 20


def field_label(key: Any) -> str:
    key = str(key)
    return FIELD_LABELS.get(key) or key.replace("_", " ").strip().capitalize()


def _team_names(payload: Mapping[str, Any]) -> dict[str, str]:
    """Team names for the team ids a payload stores (`owner_team`, also inside `changes`); one query."""
    ids: set[str] = set()
    for key, value in payload.items():
        if key in TEAM_ID_FIELDS and value not in (None, ""):
            ids.add(str(value))
        if key == "changes" and isinstance(value, Mapping):
            for field, pair in value.items():
                if field in TEAM_ID_FIELDS and isinstance(pair, list | tuple):
                    ids.update(str(v) for v in pair if v not in (None, ""))
    numeric = [int(i) for i in ids if i.isdigit()]
    if not numeric:
        return {}
    team = apps.get_model("catalog", "Team")
    return {str(pk): name for pk, name in team.objects.filter(pk__in=numeric).values_list("pk", "name")}


def format_value(value: Any, key: str = "", teams: Mapping[str, str] | None = None) -> str:
    """One stored value as text: lists joined, mappings as `Label: value`, booleans as yes/no, team ids by name."""
    if key in TEAM_ID_FIELDS and value not in (None, ""):
        return (teams or {}).get(str(value), f"team #{value}")
    if value is None or value == "":
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        parts = [f"{field_label(k)}: {format_value(v, str(k), teams)}" for k, v in list(value.items())[:MAX_ITEMS]]
        return "; ".join(parts) if parts else "none"
    if isinstance(value, list | tuple | set | frozenset):
        items = [format_value(v, key, teams) for v in list(value)[:MAX_ITEMS]]
        more = len(value) - len(items)
        return ", ".join(items) + (f" and {more} more" if more > 0 else "") if items else "none"
    return str(value)


def format_change(key: str, pair: Any, teams: Mapping[str, str] | None = None) -> str:
    """A `[before, after]` pair as `before → after`."""
    if isinstance(pair, list | tuple) and len(pair) == 2:
        return f"{format_value(pair[0], key, teams)} → {format_value(pair[1], key, teams)}"
    return format_value(pair, key, teams)


@register.filter
def payload_details(payload: Any) -> list[tuple[str, str]]:
    """An audit payload as (label, text) pairs; empty values are left out and `changes` become one pair per
    changed field (`Owner team: Platform → Payments`)."""
    if not isinstance(payload, Mapping):
        return [] if payload in (None, "") else [("Details", format_value(payload))]
    teams = _team_names(payload)
    details: list[tuple[str, str]] = []
    for key, value in payload.items():
        if value is None or value == "" or value == [] or value == {}:
            continue
        if key == "changes" and isinstance(value, Mapping):
            details.extend((field_label(f), format_change(str(f), pair, teams)) for f, pair in value.items())
        elif key in ("from", "to") and isinstance(value, str):
            details.append((field_label(key), value.replace("_", " ")))
        else:
            details.append((field_label(key), format_value(value, str(key), teams)))
    return details


@register.filter
def human_list(value: Any) -> str:
    """`['bob', 'frank']` -> `bob, frank`."""
    if isinstance(value, str):
        return value
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        return format_value(list(value))
    return format_value(value)


@register.filter
def target_type_label(value: Any) -> str:
    """An audit target type (a model name such as `aitool`) as words: `AI tool`."""
    name = str(value or "")
    if not name:
        return ""
    if name in TARGET_LABELS:
        return TARGET_LABELS[name]
    try:
        return str(apps.get_model("catalog", name)._meta.verbose_name)
    except LookupError:
        return name.replace("_", " ")


@register.filter
def reason_label(code: Any) -> str:
    """A policy reason code (`no_grant`) as a short label (`No grant for your team`)."""
    return REASON_LABELS.get(str(code), str(code).replace("_", " ").capitalize())


def codes_of(reasons: Any) -> list[str]:
    """Codes from a Decision, a list of Reasons, of reason dicts or of codes."""
    if reasons is None:
        return []
    if hasattr(reasons, "codes"):
        return list(reasons.codes)
    codes = []
    for r in reasons:
        code = r.get("code") if isinstance(r, Mapping) else getattr(r, "code", r)
        codes.append(str(code))
    return codes


def grant_can_help(reasons: Any) -> bool:
    """Whether a new grant would lift this denial: every reason is one a grant fixes (no grant, an expired
    grant, a grant narrower than the data). Banned, unapproved or expired-review tools, data above the tool's
    clearance or a template that does not offer the tool are not a matter of access."""
    codes = codes_of(reasons)
    return bool(codes) and all(code in GRANT_FIXABLE for code in codes)


register.filter("grant_can_help", grant_can_help)
register.filter("masked_tail", masked_tail)  # a stored credential: `********1234`
