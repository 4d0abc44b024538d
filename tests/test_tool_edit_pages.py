"""Edit a tool's details from its page: the API's rule (platform engineers always, the proposer until the tool
goes to review), the same service (raising the risk tier of an approved tool sends it back to review), field
errors, and nothing changed on a refusal."""

from __future__ import annotations

import pytest

from catalog.models import AITool, AuditEvent, ToolApproval
from catalog.services import tools as tool_services

pytestmark = pytest.mark.django_db

FIELDS = (
    "name",
    "vendor",
    "kind",
    "risk_tier",
    "max_data_classification",
    "homepage",
    "description",
    "data_location",
    "pricing_note",
    "monthly_price_per_seat",
    "owner_team",
)


@pytest.fixture
def proposed(people, teams):
    return tool_services.tool_propose(
        actor=people["alice"],
        data={
            "name": "Zed AI",
            "slug": "zed-ai",
            "vendor": "Zed Industries",
            "kind": "ide",
            "risk_tier": "low",
            "max_data_classification": "internal",
            "homepage": "https://zed.dev",
            "owner_team": teams["payments"],
        },
    )


@pytest.fixture
def approved(people, proposed):
    tool_services.tool_request_review(tool=proposed, actor=people["alice"])
    result = tool_services.tool_approve(tool=proposed, actor=people["bob"], reason="DPA signed.")
    assert result.complete
    tool = AITool.objects.get(pk=proposed.pk)
    assert tool.status == "approved" and tool.review_due is not None
    return tool


def form_data(tool: AITool, **changes) -> dict:
    data = {f: getattr(tool, f) for f in FIELDS}
    data["owner_team"] = tool.owner_team.slug
    data["monthly_price_per_seat"] = "" if tool.monthly_price_per_seat is None else str(tool.monthly_price_per_seat)
    return {**data, **changes}


def snapshot(tool: AITool):
    tool = AITool.objects.get(pk=tool.pk)
    return {f: getattr(tool, f) for f in (*FIELDS, "status", "updated_at")}


EDIT_LINK = 'href="/tools/zed-ai/edit/"'


@pytest.mark.parametrize(
    "status,allowed",
    [
        ("proposed", {"alice", "bob", "frank", "admin"}),
        ("rejected", {"alice", "bob", "frank", "admin"}),
        ("in_review", {"bob", "frank", "admin"}),
        ("approved", {"bob", "frank", "admin"}),
        ("banned", {"bob", "frank", "admin"}),
    ],
)
def test_who_may_edit(client, people, proposed, status, allowed):
    AITool.objects.filter(pk=proposed.pk).update(status=status)
    before, events = snapshot(proposed), AuditEvent.objects.count()
    for who in ("alice", "dave", "bob", "frank", "carol", "erin", "admin"):
        client.force_login(people[who])
        detail = client.get("/tools/zed-ai/").content.decode()
        assert (EDIT_LINK in detail) == (who in allowed), who
        page = client.get("/tools/zed-ai/edit/")
        assert page.status_code == (200 if who in allowed else 403), who
        if who not in allowed:
            response = client.post("/tools/zed-ai/edit/", form_data(proposed, name="Hijacked"))
            assert response.status_code == 403, who
    assert snapshot(proposed) == before and AuditEvent.objects.count() == events


def test_anonymous_is_sent_to_sign_in(client, proposed):
    for response in (client.get("/tools/zed-ai/edit/"), client.post("/tools/zed-ai/edit/", form_data(proposed))):
        assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert client.get("/tools/nope/edit/").status_code == 302


def test_proposer_edits_and_it_is_audited(client, people, teams, proposed):
    client.force_login(people["alice"])
    page = client.get("/tools/zed-ai/edit/").content.decode()
    assert "Edit Zed AI" in page and 'value="Zed Industries"' in page and 'value="https://zed.dev"' in page
    assert 'name="slug"' not in page and 'value="payments" selected' in page
    assert client.get("/tools/nope/edit/").status_code == 404
    changes = {
        "name": "Zed",
        "description": "Local-first editor with an agent panel.",
        "homepage": "",
        "monthly_price_per_seat": "20.00",
        "owner_team": "search",
        "slug": "renamed",  # not a field of the edit form: ignored
    }
    response = client.post("/tools/zed-ai/edit/", form_data(proposed, **changes), follow=True)
    assert response.redirect_chain == [("/tools/zed-ai/", 302)]
    assert "Zed saved." in response.content.decode()
    tool = AITool.objects.get(pk=proposed.pk)
    assert (tool.slug, tool.name, tool.homepage, str(tool.monthly_price_per_seat), tool.owner_team.slug) == (
        "zed-ai",
        "Zed",
        "",
        "20.00",
        "search",
    )
    assert tool.status == "proposed"
    event = AuditEvent.objects.get(verb="tool.updated")
    assert event.actor_repr == "alice" and event.payload["changes"]["name"] == ["Zed AI", "Zed"]
    assert set(event.payload["changes"]) == {"name", "description", "homepage", "monthly_price_per_seat", "owner_team"}

    # saving again without a change writes nothing
    response = client.post("/tools/zed-ai/edit/", form_data(tool), follow=True)
    assert "Nothing changed." in response.content.decode()
    assert AuditEvent.objects.filter(verb="tool.updated").count() == 1


@pytest.mark.parametrize(
    "change,field,message",
    [
        ({"name": ""}, "name", "This field is required."),
        ({"homepage": "not a url"}, "homepage", "Enter a valid URL."),
        ({"risk_tier": "extreme"}, "risk_tier", "Select a valid choice."),
        ({"monthly_price_per_seat": "-1"}, "monthly_price_per_seat", "greater than or equal to 0"),
        ({"owner_team": ""}, "owner_team", "This field is required."),
    ],
)
def test_bad_input_shows_field_errors(client, people, proposed, change, field, message):
    before = snapshot(proposed)
    client.force_login(people["bob"])
    response = client.post("/tools/zed-ai/edit/", form_data(proposed, **change))
    assert response.status_code == 400
    errors = response.content.decode().split(f'id="id_{field}_errors"', 1)
    assert len(errors) == 2 and message in errors[1].split("</ul>", 1)[0]
    assert snapshot(proposed) == before and not AuditEvent.objects.filter(verb="tool.updated").exists()


def test_raising_the_risk_of_an_approved_tool_sends_it_back_to_review(client, people, approved):
    client.force_login(people["frank"])
    page = client.get("/tools/zed-ai/edit/").content.decode()
    assert "Raising the risk tier sends" in page
    response = client.post("/tools/zed-ai/edit/", form_data(approved, risk_tier="high"), follow=True)
    page = response.content.decode()
    assert "back in review and needs 2 approvals again" in page
    tool = AITool.objects.get(pk=approved.pk)
    assert tool.status == "in_review" and tool.risk_tier == "high" and tool.review_due is None
    event = AuditEvent.objects.get(verb="tool.updated")
    assert event.payload["status"] == ["approved", "in_review"]
    assert event.payload["changes"]["risk_tier"] == ["low", "high"]
    # the tool page now offers the review again, and alice (the proposer) still may not edit it
    assert 'id="tool-status">In review' in page
    client.force_login(people["alice"])
    assert client.get("/tools/zed-ai/edit/").status_code == 403


def test_lowering_the_risk_keeps_an_approved_tool_approved(client, people, approved):
    client.force_login(people["bob"])
    AITool.objects.filter(pk=approved.pk).update(risk_tier="medium")
    tool = AITool.objects.get(pk=approved.pk)
    response = client.post("/tools/zed-ai/edit/", form_data(tool, risk_tier="low"), follow=True)
    assert "Zed AI saved." in response.content.decode()
    tool = AITool.objects.get(pk=tool.pk)
    assert tool.status == "approved" and tool.risk_tier == "low" and tool.review_due == approved.review_due
    assert "status" not in AuditEvent.objects.get(verb="tool.updated").payload


def test_a_change_of_tier_in_review_clears_the_approvals_collected(client, people, teams):
    tool = tool_services.tool_propose(
        actor=people["alice"],
        data={
            "name": "Zed AI",
            "slug": "zed-ai",
            "vendor": "Zed",
            "kind": "ide",
            "risk_tier": "high",
            "max_data_classification": "internal",
        },
    )
    tool_services.tool_request_review(tool=tool, actor=people["alice"])
    assert not tool_services.tool_approve(tool=tool, actor=people["bob"], reason="one of two").complete
    tool = AITool.objects.get(pk=tool.pk)
    client.force_login(people["frank"])
    detail = client.get("/tools/zed-ai/").content.decode()
    assert EDIT_LINK in detail
    response = client.post("/tools/zed-ai/edit/", form_data(tool, risk_tier="medium"), follow=True)
    assert "Zed AI saved." in response.content.decode()
    tool = AITool.objects.get(pk=tool.pk)
    assert tool.status == "in_review" and not ToolApproval.objects.filter(tool=tool).exists()
    assert AuditEvent.objects.get(verb="tool.updated").payload["approvals_cleared"] == 1
