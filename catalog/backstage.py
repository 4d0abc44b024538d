"""The catalog as Backstage entities, checked against Backstage's catalog-model rules.

Each tool becomes `kind: Resource` (`spec.type: ai-tool`, `spec.owner: group:<team>`) and each team
`kind: Group`. The validators mirror @backstage/catalog-model's KubernetesValidatorFunctions and the
Resource/Group v1alpha1 JSON schemas, so what we serve is what a Backstage instance accepts.
"""

from __future__ import annotations

import re
from typing import Any

from django.urls import reverse

from .conf import goldpath_settings
from .models import AITool, Team
from .notifications import portal_link

API_VERSION = "backstage.io/v1alpha1"
ANNOTATION_PREFIX = "goldpath.dev"

_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def is_valid_object_name(value: Any) -> bool:
    """Strings of 1-63 characters of [a-z0-9A-Z] possibly separated by [-_.]."""
    return isinstance(value, str) and 1 <= len(value) <= 63 and bool(_NAME.match(value))


def is_valid_dns_subdomain(value: str) -> bool:
    return 1 <= len(value) <= 253 and all(1 <= len(p) <= 63 and _DNS_LABEL.match(p) for p in value.split("."))


def is_valid_annotation_key(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = value.split("/")
    if len(parts) == 1:
        return is_valid_object_name(parts[0])
    if len(parts) == 2:
        return is_valid_dns_subdomain(parts[0]) and is_valid_object_name(parts[1])
    return False


def is_valid_label_value(value: Any) -> bool:
    return isinstance(value, str) and (value == "" or is_valid_object_name(value))


def validate_entity(entity: dict[str, Any]) -> list[str]:
    """Return the problems Backstage's validators would report (empty when the entity is valid)."""
    problems: list[str] = []
    if entity.get("apiVersion") != API_VERSION:
        problems.append("apiVersion must be backstage.io/v1alpha1")
    kind = entity.get("kind")
    meta = entity.get("metadata") or {}
    spec = entity.get("spec") or {}
    if not is_valid_object_name(meta.get("name")):
        problems.append(f"metadata.name {meta.get('name')!r} is not a valid entity name")
    for key, value in (meta.get("annotations") or {}).items():
        if not is_valid_annotation_key(key):
            problems.append(f"annotation key {key!r} is not valid")
        if not isinstance(value, str):
            problems.append(f"annotation {key!r} must be a string")
    for key, value in (meta.get("labels") or {}).items():
        if not is_valid_annotation_key(key) or not is_valid_label_value(value):
            problems.append(f"label {key!r}={value!r} is not valid")
    for tag in meta.get("tags") or []:
        if not (isinstance(tag, str) and 1 <= len(tag) <= 63 and re.match(r"^[a-z0-9:+#]+(-[a-z0-9:+#]+)*$", tag)):
            problems.append(f"tag {tag!r} is not valid")
    if kind == "Resource":
        for field in ("type", "owner"):
            if not isinstance(spec.get(field), str) or not spec.get(field):
                problems.append(f"Resource spec.{field} is required and must be a non-empty string")
    elif kind == "Group":
        if not isinstance(spec.get("type"), str) or not spec.get("type"):
            problems.append("Group spec.type is required")
        if not isinstance(spec.get("children"), list):
            problems.append("Group spec.children is required and must be a list")
    else:
        problems.append(f"unexpected kind {kind!r}")
    return problems


def _tag(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")[:63] or "none"


def tool_entity(tool: AITool) -> dict[str, Any]:
    annotations = {
        f"{ANNOTATION_PREFIX}/portal-url": portal_link("tool-detail", slug=tool.slug),
        f"{ANNOTATION_PREFIX}/status": tool.status,
        f"{ANNOTATION_PREFIX}/risk-tier": tool.risk_tier,
        f"{ANNOTATION_PREFIX}/max-data-classification": tool.max_data_classification,
        f"{ANNOTATION_PREFIX}/vendor": tool.vendor,
        "backstage.io/source-location": "url:" + goldpath_settings.PORTAL_URL.rstrip("/") + reverse("goldpath:api:tool-detail", kwargs={"slug": tool.slug}),
    }
    if tool.review_due:
        annotations[f"{ANNOTATION_PREFIX}/review-due"] = tool.review_due.isoformat()
    metadata: dict[str, Any] = {
        "name": tool.slug,
        "title": tool.name,
        "description": tool.description or f"{tool.name} by {tool.vendor}",
        "annotations": annotations,
        "labels": {
            f"{ANNOTATION_PREFIX}/status": tool.status,
            f"{ANNOTATION_PREFIX}/kind": tool.kind.replace("_", "-"),
        },
        "tags": sorted({"ai-tool", _tag(tool.kind), f"risk-{tool.risk_tier}"}),
    }
    if tool.homepage:
        metadata["links"] = [{"url": tool.homepage, "title": "Homepage"}]
    return {
        "apiVersion": API_VERSION,
        "kind": "Resource",
        "metadata": metadata,
        "spec": {"type": "ai-tool", "owner": f"group:default/{tool.owner_team.slug}"},
    }


def team_entity(team: Team) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Group",
        "metadata": {
            "name": team.slug,
            "title": team.name,
            "description": team.description or team.name,
            "annotations": {f"{ANNOTATION_PREFIX}/portal-url": portal_link("team-detail", slug=team.slug)},
        },
        "spec": {"type": "team", "profile": {"displayName": team.name}, "children": []},
    }


def catalog_entities() -> list[dict[str, Any]]:
    teams = [team_entity(t) for t in Team.objects.order_by("slug")]
    tools = [tool_entity(t) for t in AITool.objects.select_related("owner_team").order_by("slug")]
    return teams + tools
