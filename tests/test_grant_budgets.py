"""A grant's monthly model budget (USD, per team x tool; the model gateway enforces it): set when granting (API,
team page, approving a request), changed by PATCH or the team page, platform engineers only, validated (>= 0,
cents), audited with before and after, nothing changed on a refusal."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.models import AccessGrant, AuditEvent
from catalog.services import access
from tests.factories import PASSWORD, ToolFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tool(teams):
    return ToolFactory(slug="aider", name="Aider", status="approved")


@pytest.fixture
def grant(people, teams, tool):
    return access.grant_create(actor=people["bob"], team=teams["payments"], tool=tool, budget_usd="250.50")


def state(grant):
    return AccessGrant.objects.get(pk=grant.pk).budget_usd, AuditEvent.objects.count()


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_grant_with_a_budget_through_the_api(api, people, tool):
    r = api(people["bob"]).post(
        "/api/v1/grants/", {"team": "payments", "tool": "aider", "budget_usd": "250.50"}, format="json"
    )
    assert r.status_code == 201, r.content
    assert r.json()["budget_usd"] == "250.50"
    assert AccessGrant.objects.get().budget_usd == Decimal("250.50")
    assert AuditEvent.objects.get(verb="grant.created").payload["budget_usd"] == "250.50"
    listed = api(people["alice"]).get("/api/v1/grants/").json()["results"]
    assert [g["budget_usd"] for g in listed] == ["250.50"]
    # no budget: null
    r = api(people["bob"]).post("/api/v1/grants/", {"team": "search", "tool": "aider"}, format="json")
    assert r.json()["budget_usd"] is None


@pytest.mark.parametrize("bad", ["-1", "1.234", "abc", "NaN", "1e20", True])
def test_bad_budgets_are_400_and_grant_nothing(api, people, tool, bad):
    before = (AccessGrant.objects.count(), AuditEvent.objects.count())
    r = api(people["bob"]).post(
        "/api/v1/grants/", {"team": "payments", "tool": "aider", "budget_usd": bad}, format="json"
    )
    assert r.status_code == 400 and "budget_usd" in r.json(), r.content
    assert (AccessGrant.objects.count(), AuditEvent.objects.count()) == before


def test_patch_changes_the_budget_and_is_audited(api, people, grant):
    url = f"/api/v1/grants/{grant.pk}/"
    r = api(people["frank"]).patch(url, {"budget_usd": "100"}, format="json")
    assert r.status_code == 200 and r.json()["budget_usd"] == "100.00"
    event = AuditEvent.objects.get(verb="grant.updated")
    assert event.actor_repr == "frank" and event.payload["changes"] == {"budget_usd": ["250.50", "100.00"]}
    # the same amount again writes nothing; null clears it
    assert api(people["frank"]).patch(url, {"budget_usd": "100.00"}, format="json").status_code == 200
    assert AuditEvent.objects.filter(verb="grant.updated").count() == 1
    assert api(people["frank"]).patch(url, {"budget_usd": None}, format="json").json()["budget_usd"] is None
    assert AccessGrant.objects.get(pk=grant.pk).budget_usd is None


def test_patch_refusals_change_nothing(api, people, grant, teams, tool):
    url = f"/api/v1/grants/{grant.pk}/"
    before = state(grant)
    assert api(people["alice"]).patch(url, {"budget_usd": "1"}, format="json").status_code == 403
    assert api(people["erin"]).patch(url, {"budget_usd": "1"}, format="json").status_code == 403
    assert api(people["dave"]).patch(url, {"budget_usd": "1"}, format="json").status_code == 404
    assert api().patch(url, {"budget_usd": "1"}, format="json").status_code == 401
    for body in ({"budget_usd": "-5"}, {"budget_usd": "0.001"}, {}, {"budget_usd": "1", "seats": 3}):
        assert api(people["bob"]).patch(url, body, format="json").status_code == 400, body
    assert state(grant) == before
    access.grant_revoke(grant=grant, actor=people["bob"])
    ended = api(people["bob"]).patch(url, {"budget_usd": "1"}, format="json")
    assert ended.status_code == 409
    assert AccessGrant.objects.get(pk=grant.pk).budget_usd == Decimal("250.50")


def test_approving_a_request_sets_the_budget(api, people, teams, tool):
    req = access.access_request_create(actor=people["alice"], tool=tool, team=teams["payments"], justification="x")
    r = api(people["bob"]).post(f"/api/v1/access-requests/{req.pk}/approve/", {"budget_usd": "40"}, format="json")
    assert r.status_code == 200, r.content
    assert AccessGrant.objects.get().budget_usd == Decimal("40.00")


def test_zero_is_a_budget(people, teams, tool):
    g = access.grant_create(actor=people["bob"], team=teams["payments"], tool=tool, budget_usd=0)
    assert g.budget_usd == Decimal("0.00")


# --- pages ------------------------------------------------------------------------------------------


def test_team_page_grants_with_a_budget_and_changes_it(client, people, teams, tool):
    login(client, people["bob"])
    form = client.get("/teams/payments/").content.decode()
    assert 'name="budget_usd"' in form and "Model budget / month" in form
    client.post("/teams/payments/grants/", {"tool": "aider", "budget_usd": "75.25"})
    grant = AccessGrant.objects.get()
    assert grant.budget_usd == Decimal("75.25")
    page = client.get("/teams/payments/").content.decode()
    assert "$75.25" in page
    r = client.post(f"/grants/{grant.pk}/budget/", {"budget_usd": "80", "next": "/teams/payments/"}, follow=True)
    assert "model budget for Aider: $80.00 a month" in r.content.decode()
    assert AccessGrant.objects.get().budget_usd == Decimal("80.00")
    bad = client.post(f"/grants/{grant.pk}/budget/", {"budget_usd": "-3"}, follow=True)
    assert "Give 0 to" in bad.content.decode() and AccessGrant.objects.get().budget_usd == Decimal("80.00")
    client.post(f"/grants/{grant.pk}/budget/", {"budget_usd": ""})
    assert AccessGrant.objects.get().budget_usd is None
    assert "no budget" in client.get("/teams/payments/").content.decode()


def test_a_bad_budget_on_the_grant_form_grants_nothing(client, people, teams, tool):
    login(client, people["bob"])
    r = client.post("/teams/payments/grants/", {"tool": "aider", "budget_usd": "12.345"}, follow=True)
    assert "at most 2 decimal places" in r.content.decode()
    assert not AccessGrant.objects.exists()


def test_developers_see_the_budget_but_may_not_change_it(client, people, grant):
    login(client, people["alice"])
    page = client.get("/teams/payments/").content.decode()
    assert "$250.50" in page and f"/grants/{grant.pk}/budget/" not in page
    before = state(grant)
    assert client.post(f"/grants/{grant.pk}/budget/", {"budget_usd": "1"}).status_code == 403
    assert state(grant) == before
