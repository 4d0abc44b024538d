"""The Django admin reads governed models and changes none of them (issue 14): an admin superuser cannot forge an
approval, edit a risk tier unaudited, or add a team member behind the services' back."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from catalog.models import AccessGrant, AITool, AuditEvent, Profile, Team, ToolApproval
from catalog.services import access
from tests.factories import ToolFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, people):
    client.force_login(people["admin"])
    return client


def tool_form(tool: AITool, **over) -> dict:
    data = {
        "slug": tool.slug,
        "name": tool.name,
        "vendor": tool.vendor,
        "kind": tool.kind,
        "risk_tier": tool.risk_tier,
        "max_data_classification": tool.max_data_classification,
        "owner_team": tool.owner_team_id,
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
    }
    return {**data, **over}


def test_an_admin_cannot_forge_an_approval(admin_client, people, teams):
    tool = ToolFactory(slug="gizmo", status="in_review", risk_tier="high", proposed_by=people["alice"])
    before = AuditEvent.objects.count()
    r = admin_client.post(
        "/admin/catalog/toolapproval/add/", {"tool": tool.pk, "reviewer": people["bob"].pk, "reason": "forged"}
    )
    assert r.status_code == 403
    assert not ToolApproval.objects.exists() and AuditEvent.objects.count() == before
    assert admin_client.get("/admin/catalog/toolapproval/").status_code == 200  # still readable


def test_an_admin_cannot_edit_a_risk_tier_in_the_admin(admin_client, people, teams):
    tool = ToolFactory(slug="gizmo", status="approved", risk_tier="low", owner_team=teams["platform"])
    page = admin_client.get(f"/admin/catalog/aitool/{tool.pk}/change/")
    assert page.status_code == 200 and 'name="risk_tier"' not in page.content.decode()  # shown, not editable
    r = admin_client.post(f"/admin/catalog/aitool/{tool.pk}/change/", tool_form(tool, risk_tier="high"))
    assert r.status_code == 403
    tool.refresh_from_db()
    assert tool.risk_tier == "low" and tool.status == "approved"
    assert admin_client.post("/admin/catalog/aitool/add/", tool_form(tool, slug="other")).status_code == 403
    assert admin_client.post(f"/admin/catalog/aitool/{tool.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AITool.objects.filter(pk=tool.pk).exists()


@pytest.mark.parametrize(
    "model", ["aitool", "toolapproval", "team", "profile", "accessgrant", "accessrequest", "auditevent"]
)
def test_governed_models_have_no_add_route(admin_client, people, teams, model):
    assert admin_client.post(f"/admin/catalog/{model}/add/", {}).status_code == 403


def test_an_admin_cannot_change_teams_grants_or_roles_in_the_admin(admin_client, people, teams):
    tool = ToolFactory(slug="aider", status="approved")
    grant = access.grant_create(actor=people["bob"], team=teams["payments"], tool=tool)
    payments = teams["payments"]
    r = admin_client.post(f"/admin/catalog/team/{payments.pk}/change/", {"slug": "payments", "name": "Renamed"})
    assert r.status_code == 403
    assert admin_client.post(f"/admin/catalog/team/{payments.pk}/delete/", {"post": "yes"}).status_code == 403
    r = admin_client.post(f"/admin/catalog/accessgrant/{grant.pk}/change/", {"state": "revoked"})
    assert r.status_code == 403
    profile = Profile.objects.get(user=people["alice"])
    r = admin_client.post(f"/admin/catalog/profile/{profile.pk}/change/", {"user": people["alice"].pk, "role": "admin"})
    assert r.status_code == 403
    payments.refresh_from_db()
    profile.refresh_from_db()
    assert payments.name == "Payments" and profile.role == "developer"
    assert AccessGrant.objects.get(pk=grant.pk).state == "active"
    page = admin_client.get(f"/admin/catalog/team/{payments.pk}/change/").content.decode()
    assert "alice" in page  # members are shown (read from the team's group)


def test_the_host_group_and_user_admin_cannot_change_team_membership(admin_client, people, teams):
    """Membership is the team's group: its admin page is read-only, and the user form neither offers nor drops
    team groups."""
    payments = teams["payments"]
    r = admin_client.post(f"/admin/auth/group/{payments.group_id}/change/", {"name": "team:payments"})
    assert r.status_code == 403
    assert admin_client.post(f"/admin/auth/group/{payments.group_id}/delete/", {"post": "yes"}).status_code == 403
    other = Group.objects.create(name="vpn-users")
    assert admin_client.post(f"/admin/auth/group/{other.pk}/change/", {"name": "vpn"}).status_code == 302

    dave, alice = people["dave"], people["alice"]
    form = admin_client.get(f"/admin/auth/user/{dave.pk}/change/").content.decode()
    groups = form[form.index('name="groups"') : form.index("</select>", form.index('name="groups"'))]
    assert f'value="{payments.group_id}"' not in groups and f'value="{other.pk}"' in groups
    assert "changed on the team's page" in form

    def save(user, groups):
        return admin_client.post(
            f"/admin/auth/user/{user.pk}/change/",
            {
                "username": user.username,
                "email": user.email,
                "is_active": "on",
                "date_joined_0": "2026-01-01",
                "date_joined_1": "00:00:00",
                "groups": groups,
            },
        )

    # a team group posted for dave is refused as an invalid choice: he does not join payments
    r = save(dave, [payments.group_id, other.pk])
    assert r.status_code == 200 and "Select a valid choice" in r.content.decode()
    assert not payments.members.filter(pk=dave.pk).exists()
    # saving alice with other groups keeps her team membership
    r = save(alice, [other.pk])
    assert r.status_code == 302, r.content.decode()[:2000]
    assert payments.members.filter(pk=alice.pk).exists()
    assert set(alice.groups.values_list("name", flat=True)) == {"team:payments", "vpn"}  # renamed above
    assert Team.objects.get(pk=payments.pk).members.count() == 1
