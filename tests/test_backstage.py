"""The Backstage export: every entity passes Backstage's catalog-model validation rules."""

from __future__ import annotations

import pytest
import yaml

from catalog.backstage import is_valid_annotation_key, is_valid_object_name, validate_entity
from tests.factories import ToolFactory

pytestmark = pytest.mark.django_db


def test_validators_match_backstage_rules():
    assert is_valid_object_name("claude-code")
    assert is_valid_object_name("a.b_c-d")
    assert not is_valid_object_name("-x")
    assert not is_valid_object_name("x" * 64)
    assert not is_valid_object_name("a b")
    assert is_valid_annotation_key("goldpath.dev/risk-tier")
    assert is_valid_annotation_key("backstage.io/source-location")
    assert not is_valid_annotation_key("Goldpath.dev/x")
    assert not is_valid_annotation_key("a/b/c")
    assert validate_entity(
        {"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": "x"}, "spec": {"type": "team"}}
    )


def test_entities_export(api, people, teams):
    ToolFactory(
        slug="claude-code",
        name="Claude Code",
        vendor="Anthropic",
        status="approved",
        risk_tier="high",
        kind="mcp_server",
        homepage="https://example.com",
        owner_team=teams["payments"],
    )
    body = api(people["alice"]).get("/api/v1/backstage/entities/").json()
    entities = body["items"]
    assert body["totalItems"] == len(entities) == 4
    for entity in entities:
        assert validate_entity(entity) == [], entity
    tool = next(e for e in entities if e["kind"] == "Resource")
    assert tool["metadata"]["name"] == "claude-code"
    assert tool["spec"] == {"type": "ai-tool", "owner": "group:default/payments"}
    annotations = tool["metadata"]["annotations"]
    assert annotations["goldpath.dev/status"] == "approved"
    assert annotations["goldpath.dev/risk-tier"] == "high"
    assert annotations["goldpath.dev/portal-url"].endswith("/tools/claude-code/")
    groups = sorted(e["metadata"]["name"] for e in entities if e["kind"] == "Group")
    assert groups == ["payments", "platform", "search"]
    docs = list(yaml.safe_load_all(api(people["alice"]).get("/api/v1/backstage/entities/?output=yaml").content))
    assert docs == entities
    assert api().get("/api/v1/backstage/entities/").status_code == 401
