"""The audit log: append-only, readable by auditors/platform/admins, filterable, exportable."""

from __future__ import annotations

import csv
import io

import pytest

from catalog.models import AuditEvent
from tests.factories import ToolFactory

pytestmark = pytest.mark.django_db


def _approve_something(api, people, teams):
    tool = ToolFactory(slug="gizmo", status="in_review", proposed_by=people["alice"], owner_team=teams["platform"])
    response = api(people["bob"]).post(
        "/api/v1/tools/gizmo/approve/", {"reason": "fine"}, format="json", HTTP_X_REQUEST_ID="req-123"
    )
    assert response.status_code == 200
    assert response["X-Request-ID"] == "req-123"
    return tool


def test_audit_event_records_actor_target_and_request(api, people, teams):
    _approve_something(api, people, teams)
    event = AuditEvent.objects.get(verb="tool.approved")
    assert (event.actor_repr, event.target_type, event.target_repr, event.request_id) == (
        "bob",
        "aitool",
        "gizmo",
        "req-123",
    )
    assert event.payload["reason"] == "fine"


def test_audit_events_are_append_only(api, people, teams):
    _approve_something(api, people, teams)
    event = AuditEvent.objects.get(verb="tool.approved")
    event.verb = "tampered"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().update(verb="x")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).verb == "tool.approved"
    for method in ("post", "put", "patch", "delete"):
        response = getattr(api(people["admin"]), method)(f"/api/v1/audit-events/{event.pk}/", {}, format="json")
        assert response.status_code == 405


@pytest.mark.parametrize(
    ("username", "status"), [("erin", 200), ("bob", 200), ("admin", 200), ("alice", 403), ("carol", 403)]
)
def test_audit_api_roles(api, people, teams, username, status):
    _approve_something(api, people, teams)
    assert api(people[username]).get("/api/v1/audit-events/").status_code == status


def test_audit_filters_and_csv(api, people, teams):
    _approve_something(api, people, teams)
    client = api(people["erin"])
    body = client.get("/api/v1/audit-events/?actor=bob&verb=tool.approved").json()
    assert [e["target_repr"] for e in body["results"]] == ["gizmo"]
    assert client.get("/api/v1/audit-events/?verb=tool.").json()["results"]
    assert client.get("/api/v1/audit-events/?actor=nobody").json()["results"] == []
    assert client.get("/api/v1/audit-events/?since=garbage").status_code == 400
    export = client.get("/api/v1/audit-events/?format=csv&verb=tool.approved")
    assert export.status_code == 200
    assert export["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows[0]["actor_repr"] == "bob" and rows[0]["target_repr"] == "gizmo"


def test_admin_site_audit_is_read_only(client, people, teams, api):
    _approve_something(api, people, teams)
    event = AuditEvent.objects.get(verb="tool.approved")
    client.force_login(people["admin"])
    assert client.get(f"/admin/catalog/auditevent/{event.pk}/change/").status_code == 200
    client.post(f"/admin/catalog/auditevent/{event.pk}/change/", {"verb": "x"})
    assert client.get(f"/admin/catalog/auditevent/{event.pk}/delete/").status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).verb == "tool.approved"


def test_secrets_are_masked_in_payloads(people):
    from catalog import audit

    event = audit.record(
        actor=people["bob"],
        verb="x.test",
        target_type="x",
        target_id=1,
        target_repr="x",
        payload={"api_key": "sk-live-123", "nested": {"password": "hunter2"}, "ok": "visible"},
    )
    assert event.payload == {"api_key": "********", "nested": {"password": "********"}, "ok": "visible"}
