"""Tools API: reads, proposals, bad input, filters, paging, auth, and the role x action matrix."""

from __future__ import annotations

import pytest

from catalog.models import AITool, AuditEvent, ToolApproval
from tests.factories import ToolFactory

pytestmark = pytest.mark.django_db

VALID = {
    "slug": "new-agent",
    "name": "New Agent",
    "vendor": "Acme",
    "kind": "agent",
    "risk_tier": "medium",
    "max_data_classification": "internal",
}


def test_anonymous_is_refused_but_health_and_docs_are_public(api, db):
    assert api().get("/api/v1/tools/").status_code == 401
    assert api().post("/api/v1/tools/", VALID, format="json").status_code == 401
    assert api().get("/api/schema/").status_code == 200
    assert api().get("/api/docs/").status_code == 200
    health = api().get("/healthz")
    assert health.status_code == 200
    assert health.json()["database"]["ok"] is True and health.json()["broker"]["ok"] is True


def test_token_obtain_use_and_revoke(api, people):
    client = api()
    bad = client.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"}, format="json")
    assert bad.status_code == 400
    token = client.post(
        "/api/v1/auth/token/", {"username": "alice", "password": "correct-horse-42"}, format="json"
    ).json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/tools/").status_code == 200
    assert client.delete("/api/v1/auth/token/").status_code == 204
    assert client.get("/api/v1/tools/").status_code == 401
    assert AuditEvent.objects.filter(verb="token.revoked", actor_repr="alice").exists()


def test_propose_defaults_and_audit(api, people, teams):
    response = api(people["alice"]).post("/api/v1/tools/", VALID, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "proposed"
    assert body["owner_team"] == "platform"
    assert body["proposed_by"] == "alice"
    event = AuditEvent.objects.get(verb="tool.proposed")
    assert event.actor_repr == "alice" and event.target_repr == "new-agent"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"kind": "robot"}, "kind"),
        ({"slug": "Bad Slug!"}, "slug"),
        ({"slug": "x" * 51}, "slug"),
        ({"slug": "-leading"}, "slug"),
        ({"risk_tier": 3}, "risk_tier"),
        ({"max_data_classification": "secret"}, "max_data_classification"),
        ({"monthly_price_per_seat": "cheap"}, "monthly_price_per_seat"),
        ({"monthly_price_per_seat": "-5"}, "monthly_price_per_seat"),
        ({"homepage": "not a url"}, "homepage"),
        ({"owner_team": "nope"}, "owner_team"),
        ({"name": ["list"]}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_propose_bad_input_is_400_with_field_errors(api, people, teams, patch, field):
    response = api(people["alice"]).post("/api/v1/tools/", {**VALID, **patch}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not AITool.objects.exists()


@pytest.mark.parametrize("missing", ["slug", "name", "vendor", "kind", "risk_tier", "max_data_classification"])
def test_propose_missing_required(api, people, teams, missing):
    data = {k: v for k, v in VALID.items() if k != missing}
    response = api(people["alice"]).post("/api/v1/tools/", data, format="json")
    assert response.status_code == 400
    assert missing in response.json()


def test_propose_duplicate_slug_and_garbage_bodies(api, people, teams):
    assert api(people["alice"]).post("/api/v1/tools/", VALID, format="json").status_code == 201
    dup = api(people["dave"]).post("/api/v1/tools/", VALID, format="json")
    assert dup.status_code == 400 and "slug" in dup.json()
    garbage = api(people["dave"]).post("/api/v1/tools/", "{not json", content_type="application/json")
    assert garbage.status_code == 400
    as_list = api(people["dave"]).post("/api/v1/tools/", [1, 2], format="json")
    assert as_list.status_code == 400
    assert AITool.objects.count() == 1


def test_auditor_cannot_propose(api, people, teams):
    assert api(people["erin"]).post("/api/v1/tools/", VALID, format="json").status_code == 403
    assert not AITool.objects.exists()


def test_everyone_reads_every_status_with_filters_and_search(api, people, teams):
    for i, status in enumerate(["proposed", "in_review", "approved", "banned"]):
        ToolFactory(
            slug=f"t{i}",
            name=f"Tool {i}",
            status=status,
            vendor="Acme" if i % 2 else "Globex",
            owner_team=teams["platform"],
        )
    client = api(people["alice"])
    assert client.get("/api/v1/tools/").json()["count"] == 4
    assert [t["slug"] for t in client.get("/api/v1/tools/?status=banned").json()["results"]] == ["t3"]
    assert client.get("/api/v1/tools/?status=approved&status=proposed").json()["count"] == 2
    assert client.get("/api/v1/tools/?vendor=acme").json()["count"] == 2
    assert client.get("/api/v1/tools/?q=tool 2").json()["count"] == 1
    assert client.get("/api/v1/tools/?status=bogus").status_code == 400
    assert client.get("/api/v1/tools/t3/").json()["status"] == "banned"
    assert client.get("/api/v1/tools/nope/").status_code == 404


def test_page_size_up_to_200(api, people, teams):
    for i in range(205):
        ToolFactory(slug=f"bulk-{i}", owner_team=teams["platform"])
    client = api(people["alice"])
    assert len(client.get("/api/v1/tools/?page_size=5").json()["results"]) == 5
    assert len(client.get("/api/v1/tools/?page_size=500").json()["results"]) == 200
    assert len(client.get("/api/v1/tools/").json()["results"]) == 50


ACTIONS = ["request-review", "approve", "reject", "deprecate", "retire", "ban", "reinstate"]
START = {
    "request-review": "proposed",
    "approve": "in_review",
    "reject": "in_review",
    "deprecate": "approved",
    "retire": "deprecated",
    "ban": "approved",
    "reinstate": "banned",
}
# who may act (proposer is a third developer, so alice and dave are not the proposer)
MAY = {
    "request-review": {"bob", "frank", "admin"},
    "approve": {"bob", "frank", "admin"},
    "reject": {"bob", "frank", "admin"},
    "deprecate": {"bob", "frank", "admin"},
    "retire": {"bob", "frank", "admin"},
    "ban": {"bob", "frank", "admin"},
    "reinstate": {"admin"},
}


def _state(tool: AITool) -> tuple:
    tool.refresh_from_db()
    return (tool.status, tool.review_due, ToolApproval.objects.filter(tool=tool).count(), AuditEvent.objects.count())


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("username", ["alice", "dave", "bob", "frank", "carol", "erin", "admin", None])
def test_role_matrix_for_tool_actions(api, people, teams, action, username):
    from tests.factories import UserFactory

    proposer = UserFactory(username="proposer", role="developer")
    tool = ToolFactory(status=START[action], proposed_by=proposer, owner_team=teams["platform"])
    before = _state(tool)
    user = people.get(username) if username else None
    response = api(user).post(f"/api/v1/tools/{tool.slug}/{action}/", {"reason": "matrix"}, format="json")
    if username is None:
        assert response.status_code == 401
    elif username in MAY[action]:
        assert response.status_code == 200, response.content
        return
    else:
        assert response.status_code == 403, response.content
    assert _state(tool) == before


def test_patch_permissions(api, people, teams):
    tool = ToolFactory(status="proposed", proposed_by=people["alice"], owner_team=teams["platform"])
    assert (
        api(people["alice"]).patch(f"/api/v1/tools/{tool.slug}/", {"description": "mine"}, format="json").status_code
        == 200
    )
    assert (
        api(people["dave"]).patch(f"/api/v1/tools/{tool.slug}/", {"description": "x"}, format="json").status_code == 403
    )
    assert (
        api(people["erin"]).patch(f"/api/v1/tools/{tool.slug}/", {"description": "x"}, format="json").status_code == 403
    )
    assert api(people["bob"]).patch(f"/api/v1/tools/{tool.slug}/", {"slug": "other"}, format="json").status_code == 400
    assert api(people["bob"]).patch(f"/api/v1/tools/{tool.slug}/", {"kind": "robot"}, format="json").status_code == 400
    tool.refresh_from_db()
    assert tool.description == "mine" and tool.slug.startswith("tool-")
