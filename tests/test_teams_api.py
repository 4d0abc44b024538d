"""Teams, members and roles: admins change them; everyone else reads."""

from __future__ import annotations

import pytest

from catalog import permissions
from catalog.models import AuditEvent, Team

pytestmark = pytest.mark.django_db


def test_admin_manages_teams_and_members(api, people, teams):
    client = api(people["admin"])
    created = client.post("/api/v1/teams/", {"slug": "mobile", "name": "Mobile"}, format="json")
    assert created.status_code == 201
    added = client.post(
        "/api/v1/teams/mobile/members/", {"username": "dave", "role": "platform_engineer"}, format="json"
    )
    assert added.status_code == 201
    assert {m["username"]: m["role"] for m in added.json()}["dave"] == "platform_engineer"
    assert Team.objects.get(slug="mobile").group.user_set.filter(username="dave").exists()
    members = api(people["alice"]).get("/api/v1/teams/mobile/members/").json()["results"]
    assert [m["username"] for m in members] == ["dave"]
    assert client.delete("/api/v1/teams/mobile/members/dave/").status_code == 204
    assert not Team.objects.get(slug="mobile").members.exists()
    assert client.patch("/api/v1/users/dave/", {"role": "auditor"}, format="json").json()["role"] == "auditor"
    verbs = set(AuditEvent.objects.values_list("verb", flat=True))
    assert {"team.created", "team.member_added", "team.member_removed", "user.role_changed"} <= verbs
    assert client.delete("/api/v1/teams/mobile/").status_code == 204


@pytest.mark.parametrize("username", ["alice", "bob", "carol", "erin"])
def test_non_admins_cannot_change_teams(api, people, teams, username):
    client = api(people[username])
    before = AuditEvent.objects.count()
    assert client.get("/api/v1/teams/").status_code == 200
    assert client.post("/api/v1/teams/", {"slug": "x", "name": "X"}, format="json").status_code == 403
    assert client.post("/api/v1/teams/payments/members/", {"username": "dave"}, format="json").status_code == 403
    assert client.delete("/api/v1/teams/payments/members/alice/").status_code == 403
    assert client.patch("/api/v1/users/alice/", {"role": "admin"}, format="json").status_code == 403
    assert client.delete("/api/v1/teams/search/").status_code == 403
    assert AuditEvent.objects.count() == before
    assert permissions.role_of(type(people["alice"]).objects.get(username="alice")) == "developer"
    assert Team.objects.filter(slug="search").exists()


def test_team_bad_input(api, people, teams):
    client = api(people["admin"])
    assert client.post("/api/v1/teams/", {"slug": "Bad Slug", "name": "X"}, format="json").status_code == 400
    assert client.post("/api/v1/teams/", {"slug": "payments", "name": "X"}, format="json").status_code == 400
    assert client.post("/api/v1/teams/payments/members/", {"username": "ghost"}, format="json").status_code == 400
    assert (
        client.post("/api/v1/teams/payments/members/", {"username": "dave", "role": "king"}, format="json").status_code
        == 400
    )
