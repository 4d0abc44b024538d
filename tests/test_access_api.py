"""Access requests, grants, the usable filter, the simulator and the out-of-policy list, over the API."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.models import AccessGrant, AccessRequest, AuditEvent, Notification, Team
from catalog.policy import REASON_CODES
from catalog.services import access
from tests.factories import ToolFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tools(teams):
    return {
        "claude-code": ToolFactory(slug="claude-code", name="Claude Code", status="approved"),
        "aider": ToolFactory(slug="aider", name="Aider", status="approved", max_data_classification="internal"),
        "cursor": ToolFactory(slug="cursor", name="Cursor", status="in_review"),
    }


def snapshot():
    return (
        AccessRequest.objects.count(),
        AccessGrant.objects.count(),
        AuditEvent.objects.count(),
        list(AccessGrant.objects.values_list("state", flat=True).order_by("pk")),
        list(AccessRequest.objects.values_list("status", flat=True).order_by("pk")),
    )


def test_request_approve_flow_creates_grant_and_notifies(api, people, tools, teams):
    r = api(people["alice"]).post(
        "/api/v1/access-requests/",
        {"tool": "claude-code", "team": "payments", "justification": "Refactoring the ledger"},
        format="json",
    )
    assert r.status_code == 201, r.content
    rid = r.json()["id"]
    assert r.json()["status"] == "pending"
    # the requester and another developer may not decide
    before = snapshot()
    assert api(people["alice"]).post(f"/api/v1/access-requests/{rid}/approve/", {}, format="json").status_code == 403
    assert api(people["dave"]).post(f"/api/v1/access-requests/{rid}/approve/", {}, format="json").status_code == 404
    assert snapshot() == before
    expires = (timezone.now() + dt.timedelta(days=30)).isoformat()
    r = api(people["bob"]).post(
        f"/api/v1/access-requests/{rid}/approve/",
        {"reason": "ok", "expires_at": expires, "max_data_classification": "internal", "seats": 5},
        format="json",
    )
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "approved" and r.json()["decided_by"] == "bob"
    grant = AccessGrant.objects.get(team=teams["payments"], tool=tools["claude-code"])
    assert grant.seats == 5 and grant.max_data_classification == "internal" and grant.request_id == rid
    assert people["alice"].has_perm("catalog.use_aitool", tools["claude-code"])
    assert Notification.objects.filter(event="access_request.approve", recipients=["alice@example.com"]).exists()
    verbs = set(AuditEvent.objects.values_list("verb", flat=True))
    assert {"access_request.created", "access_request.approved", "grant.created"} <= verbs
    # deciding twice is a conflict
    assert api(people["frank"]).post(f"/api/v1/access-requests/{rid}/approve/", {}, format="json").status_code == 409


def test_nobody_decides_their_own_request(api, people, tools):
    r = api(people["bob"]).post(
        "/api/v1/access-requests/", {"tool": "aider", "team": "platform", "justification": "x"}, format="json"
    )
    assert r.status_code == 201
    rid = r.json()["id"]
    before = snapshot()
    assert api(people["bob"]).post(f"/api/v1/access-requests/{rid}/approve/", {}, format="json").status_code == 403
    assert (
        api(people["bob"]).post(f"/api/v1/access-requests/{rid}/reject/", {"reason": "no"}, format="json").status_code
        == 403
    )
    assert snapshot() == before
    r = api(people["frank"]).post(f"/api/v1/access-requests/{rid}/reject/", {"reason": "use Continue"}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "rejected" and r.json()["reason"] == "use Continue"
    assert Notification.objects.filter(event="access_request.reject", recipients=["bob@example.com"]).exists()


def test_request_refusals(api, people, tools):
    client = api(people["alice"])
    before = snapshot()
    # not approved -> 409; other team -> 403; auditor -> 403; unknown field -> 400
    assert (
        client.post(
            "/api/v1/access-requests/", {"tool": "cursor", "team": "payments", "justification": "x"}, format="json"
        ).status_code
        == 409
    )
    assert (
        client.post(
            "/api/v1/access-requests/", {"tool": "aider", "team": "search", "justification": "x"}, format="json"
        ).status_code
        == 403
    )
    assert (
        api(people["erin"])
        .post("/api/v1/access-requests/", {"tool": "aider", "team": "payments", "justification": "x"}, format="json")
        .status_code
        == 403
    )
    assert (
        client.post(
            "/api/v1/access-requests/",
            {"tool": "aider", "team": "payments", "justification": "x", "admin": True},
            format="json",
        ).status_code
        == 400
    )
    assert snapshot() == before
    payload = {"tool": "aider", "team": "payments", "justification": "x"}
    assert client.post("/api/v1/access-requests/", payload, format="json").status_code == 201
    assert client.post("/api/v1/access-requests/", payload, format="json").status_code == 409


def test_request_visibility(api, people, tools):
    access.access_request_create(
        actor=people["alice"], tool=tools["aider"], team=Team.objects.get(slug="payments"), justification="a"
    )
    dave_req = access.access_request_create(
        actor=people["dave"], tool=tools["aider"], team=Team.objects.get(slug="search"), justification="d"
    )
    assert [r["requester"] for r in api(people["alice"]).get("/api/v1/access-requests/").json()["results"]] == ["alice"]
    assert api(people["alice"]).get(f"/api/v1/access-requests/{dave_req.pk}/").status_code == 404
    assert len(api(people["carol"]).get("/api/v1/access-requests/").json()["results"]) == 2
    assert len(api(people["erin"]).get("/api/v1/access-requests/").json()["results"]) == 2


def test_grants_api_create_filter_revoke(api, people, tools, teams):
    before = snapshot()
    assert (
        api(people["alice"]).post("/api/v1/grants/", {"team": "payments", "tool": "aider"}, format="json").status_code
        == 403
    )
    assert snapshot() == before
    r = api(people["bob"]).post("/api/v1/grants/", {"team": "payments", "tool": "aider", "seats": 3}, format="json")
    assert r.status_code == 201, r.content
    gid = r.json()["id"]
    assert r.json()["in_force"] is True and r.json()["effective_classification"] == "internal"
    # a grant cannot widen the tool's clearance
    r = api(people["bob"]).post(
        "/api/v1/grants/",
        {"team": "search", "tool": "aider", "max_data_classification": "restricted"},
        format="json",
    )
    assert r.status_code == 400 and "max_data_classification" in r.json()
    api(people["bob"]).post("/api/v1/grants/", {"team": "search", "tool": "claude-code"}, format="json")
    assert [g["tool"] for g in api(people["erin"]).get("/api/v1/grants/?team=payments").json()["results"]] == ["aider"]
    assert [g["team"] for g in api(people["erin"]).get("/api/v1/grants/?tool=claude-code").json()["results"]] == [
        "search"
    ]
    # alice reads her team's grants only; another team's grant is a 404
    assert [g["team"] for g in api(people["alice"]).get("/api/v1/grants/").json()["results"]] == ["payments"]
    search_grant = AccessGrant.objects.get(team__slug="search")
    assert api(people["alice"]).get(f"/api/v1/grants/{search_grant.pk}/").status_code == 404
    before = snapshot()
    assert api(people["alice"]).delete(f"/api/v1/grants/{gid}/").status_code == 403
    assert api(people["erin"]).delete(f"/api/v1/grants/{gid}/").status_code == 403
    assert snapshot() == before
    assert api(people["bob"]).delete(f"/api/v1/grants/{gid}/?reason=budget").status_code == 204
    grant = AccessGrant.objects.get(pk=gid)
    assert grant.state == "revoked" and grant.end_reason == "budget" and grant.ended_by == people["bob"]
    assert not people["alice"].has_perm("catalog.use_aitool", tools["aider"])
    assert AuditEvent.objects.filter(verb="grant.revoked", target_id=str(gid)).exists()
    assert api(people["bob"]).delete(f"/api/v1/grants/{gid}/").status_code == 409


def test_usable_filter_and_constant_queries(api, people, tools, teams):
    access.grant_create(actor=people["bob"], team=teams["payments"], tool=tools["aider"])
    access.grant_create(actor=people["bob"], team=teams["payments"], tool=tools["claude-code"])
    access.grant_create(actor=people["bob"], team=teams["search"], tool=tools["claude-code"])
    ToolFactory.create_batch(6, status="approved")
    client = api(people["alice"])
    slugs = [t["slug"] for t in client.get("/api/v1/tools/?usable=true").json()["results"]]
    assert sorted(slugs) == ["aider", "claude-code"]
    tools["aider"].status = "banned"
    tools["aider"].save()
    assert [t["slug"] for t in client.get("/api/v1/tools/?usable=true").json()["results"]] == ["claude-code"]
    assert [t["slug"] for t in api(people["erin"]).get("/api/v1/tools/?usable=true").json()["results"]] == []
    # queries do not grow with the page size
    for team in ("payments",):
        for t in ToolFactory.create_batch(5, status="approved"):
            access.grant_create(actor=people["bob"], team=teams[team], tool=t)
    counts = []
    for size in (1, 6):
        with CaptureQueriesContext(connection) as q:
            r = client.get(f"/api/v1/tools/?usable=true&page_size={size}")
        assert len(r.json()["results"]) == size
        counts.append(len(q))
    assert counts[0] == counts[1]


def test_simulator_explains_every_deny(api, people, tools, teams):
    access.grant_create(
        actor=people["bob"], team=teams["payments"], tool=tools["claude-code"], max_data_classification="internal"
    )
    client = api(people["bob"])
    ok = client.post("/api/v1/authz/check/", {"user": "alice", "tool": "claude-code"}, format="json").json()
    assert ok["allowed"] is True and ok["reasons"][0]["code"] == "granted"
    r = client.post(
        "/api/v1/authz/check/", {"user": "alice", "tool": "claude-code", "classification": "restricted"}, format="json"
    ).json()
    assert r["allowed"] is False
    assert [x["code"] for x in r["reasons"]] == ["classification_above_tool", "classification_above_grant"]
    r = client.post("/api/v1/authz/check/", {"user": "dave", "tool": "cursor"}, format="json").json()
    assert [x["code"] for x in r["reasons"]] == ["tool_not_approved", "no_grant"]
    assert all(x["message"] for x in r["reasons"])
    # unknown template -> 400 (no template resolver registered yet)
    assert (
        client.post(
            "/api/v1/authz/check/", {"user": "alice", "tool": "aider", "template": "nope"}, format="json"
        ).status_code
        == 400
    )
    assert {"tool_banned", "no_grant", "grant_expired"} <= set(REASON_CODES)


def test_simulator_roles(api, people, tools):
    body = {"user": "dave", "tool": "aider"}
    assert api(people["alice"]).post("/api/v1/authz/check/", body, format="json").status_code == 403
    assert api(people["alice"]).post("/api/v1/authz/check/", {"tool": "aider"}, format="json").status_code == 200
    assert (
        api(people["alice"]).post("/api/v1/authz/check/", {"user": "alice", "tool": "aider"}, format="json").status_code
        == 200
    )
    assert (
        api(people["alice"]).post("/api/v1/authz/check/", {"user": "ghost", "tool": "aider"}, format="json").status_code
        == 403
    )
    assert api(people["carol"]).post("/api/v1/authz/check/", body, format="json").status_code == 200
    assert (
        api(people["carol"]).post("/api/v1/authz/check/", {"user": "bob", "tool": "aider"}, format="json").status_code
        == 403
    )
    for name in ("erin", "bob", "admin"):
        assert api(people[name]).post("/api/v1/authz/check/", body, format="json").status_code == 200
    assert api().post("/api/v1/authz/check/", body, format="json").status_code == 401


def test_out_of_policy_list_and_bulk_revoke(api, people, tools, teams):
    g1 = access.grant_create(actor=people["bob"], team=teams["payments"], tool=tools["claude-code"])
    g2 = access.grant_create(actor=people["bob"], team=teams["search"], tool=tools["claude-code"])
    access.grant_create(actor=people["bob"], team=teams["payments"], tool=tools["aider"])
    from catalog.services.tools import tool_ban

    tool_ban(tool=tools["claude-code"], actor=people["frank"], reason="data leak")
    rows = api(people["erin"]).get("/api/v1/out-of-policy/").json()["results"]
    assert sorted(r["id"] for r in rows) == sorted([str(g1.pk), str(g2.pk)])
    assert rows[0]["reasons"][0]["code"] == "tool_banned" and rows[0]["actions"] == ["revoke"]
    assert [r["team"] for r in api(people["alice"]).get("/api/v1/out-of-policy/").json()["results"]] == ["payments"]
    body = {"action": "revoke", "items": [{"kind": "grant", "id": str(g1.pk)}, {"kind": "grant", "id": str(g2.pk)}]}
    before = snapshot()
    assert api(people["alice"]).post("/api/v1/out-of-policy/bulk/", body, format="json").status_code == 403
    assert api(people["erin"]).post("/api/v1/out-of-policy/bulk/", body, format="json").status_code == 403
    assert snapshot() == before
    r = api(people["bob"]).post("/api/v1/out-of-policy/bulk/", {**body, "reason": "banned"}, format="json")
    assert r.status_code == 200, r.content
    assert sorted(r.json()["results"]["grant"]["done"]) == sorted([str(g1.pk), str(g2.pk)])
    assert api(people["erin"]).get("/api/v1/out-of-policy/").json()["results"] == []


def test_expiry_task_warns_then_expires(people, tools, teams):
    g = access.grant_create(
        actor=people["bob"],
        team=teams["payments"],
        tool=tools["aider"],
        expires_at=timezone.now() + dt.timedelta(days=3),
    )
    assert access.grants_expire() == {"expired": [], "warned": [g.pk]}
    assert access.grants_expire() == {"expired": [], "warned": []}
    assert Notification.objects.filter(event="grant.expiry_warning").count() == 1
    result = access.grants_expire(now=timezone.now() + dt.timedelta(days=4))
    assert result["expired"] == [g.pk]
    g.refresh_from_db()
    assert g.state == "expired" and g.permission_id is None
    assert AuditEvent.objects.filter(verb="grant.expired", target_id=str(g.pk), actor_repr="system").exists()
    assert Notification.objects.filter(event="grant.expire").exists()
    assert access.grants_expire(now=timezone.now() + dt.timedelta(days=5)) == {"expired": [], "warned": []}


def test_tool_use_record_audits_allow_and_deny(people, tools, teams):
    access.grant_create(actor=people["bob"], team=teams["payments"], tool=tools["aider"])
    assert access.tool_use_record(people["alice"], tools["aider"], None, "workspace.start").allowed
    assert not access.tool_use_record(people["dave"], tools["aider"], None, "workspace.start").allowed
    allowed = AuditEvent.objects.get(verb="tool.used")
    denied = AuditEvent.objects.get(verb="tool.use_denied")
    assert allowed.payload["action"] == "workspace.start" and allowed.payload["allowed"] is True
    assert denied.actor_repr == "dave" and denied.payload["reasons"][0]["code"] == "no_grant"


@pytest.fixture
def template_resolver():
    from catalog import policy_hooks

    class Template:
        def __init__(self, slug, offers):
            self.slug, self.offers = slug, set(offers)

        def offers_tool(self, tool):
            return tool.slug in self.offers

    templates = {
        "python-service": Template("python-service", ["claude-code"]),
        "go-service": Template("go-service", []),
    }

    def resolve(slug):
        return templates.get(slug)

    policy_hooks.register_template_resolver(resolve)
    yield
    policy_hooks._template_resolvers.remove(resolve)


@pytest.mark.parametrize(
    "setup, body, codes",
    [
        ("banned", {"tool": "claude-code"}, ["tool_banned"]),
        ("deprecated", {"tool": "claude-code"}, ["tool_not_approved"]),
        ("review_past", {"tool": "claude-code"}, ["review_expired"]),
        ("none", {"tool": "aider"}, ["no_grant"]),
        ("grant_past", {"tool": "claude-code"}, ["grant_expired"]),
        ("none", {"tool": "claude-code", "classification": "restricted"}, ["classification_above_tool"]),
        ("narrow", {"tool": "claude-code", "classification": "confidential"}, ["classification_above_grant"]),
        ("none", {"tool": "claude-code", "template": "go-service"}, ["template_does_not_offer_tool"]),
        ("inactive", {"tool": "claude-code"}, ["user_inactive"]),
    ],
)
def test_simulator_explains_each_deny_cause(api, people, tools, teams, template_resolver, setup, body, codes):
    from catalog.models import AITool

    tool = tools["claude-code"]
    grant = access.grant_create(
        actor=people["bob"],
        team=teams["payments"],
        tool=tool,
        max_data_classification="internal" if setup == "narrow" else "",
        expires_at=timezone.now() + dt.timedelta(days=1),
    )
    if setup in ("banned", "deprecated"):
        AITool.objects.filter(pk=tool.pk).update(status=setup)
    elif setup == "review_past":
        AITool.objects.filter(pk=tool.pk).update(review_due=timezone.localdate() - dt.timedelta(days=1))
    elif setup == "grant_past":
        AccessGrant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    elif setup == "inactive":
        people["alice"].is_active = False
        people["alice"].save()
    r = api(people["bob"]).post("/api/v1/authz/check/", {"user": "alice", **body}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["allowed"] is False
    assert [x["code"] for x in r.json()["reasons"]] == codes
    assert all(len(x["message"]) > 10 for x in r.json()["reasons"])
    # and the allowed case with the template that offers the tool
    if setup == "none" and body.get("template"):
        ok = api(people["bob"]).post(
            "/api/v1/authz/check/",
            {"user": "alice", "tool": "claude-code", "template": "python-service"},
            format="json",
        )
        assert ok.json()["allowed"] is True and ok.json()["template"] == "python-service"
