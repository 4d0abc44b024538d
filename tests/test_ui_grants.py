"""Grants from the pages (issue 14): an expiry typed or picked in a page (a date, or a date and time without a
zone as `<input type="datetime-local">` sends it) is read in the site's time zone, never a 500; bad text is a
field error. "Request access" is offered only where a grant would help, and the panel and the team page speak
in words, not reason codes."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone

from catalog.models import AccessGrant, AccessRequest, AITool
from catalog.services import access
from catalog.services.tools import tool_ban
from tests.factories import PASSWORD, ToolFactory

pytestmark = pytest.mark.django_db
NEXT_YEAR = timezone.now().year + 1


@pytest.fixture
def tool(teams):
    return ToolFactory(slug="aider", name="Aider", status="approved", max_data_classification="confidential")


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def grant_of(team="payments"):
    return AccessGrant.objects.get(team__slug=team, tool__slug="aider", state="active")


# --- the expiry ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/Los_Angeles"])
def test_a_datetime_local_expiry_is_read_in_the_site_time_zone(client, settings, people, tool, tz):
    settings.TIME_ZONE = tz
    login(client, people["bob"])
    r = client.post("/teams/payments/grants/", {"tool": "aider", "expires_at": f"{NEXT_YEAR}-01-15T09:30"})
    assert r.status_code == 302, r.content.decode()[:2000]
    expected = dt.datetime(NEXT_YEAR, 1, 15, 9, 30, tzinfo=zoneinfo.ZoneInfo(tz))
    assert grant_of().expires_at == expected
    page = client.get(r["Location"]).content.decode()
    assert "Payments may now use Aider." in page and f"{NEXT_YEAR}-01-15" in page


def test_a_date_alone_means_the_end_of_that_day(client, settings, people, tool):
    settings.TIME_ZONE = "Europe/Berlin"
    login(client, people["bob"])
    assert (
        client.post("/teams/payments/grants/", {"tool": "aider", "expires_at": f"{NEXT_YEAR}-03-31"}).status_code == 302
    )
    expires = grant_of().expires_at.astimezone(zoneinfo.ZoneInfo("Europe/Berlin"))
    assert (expires.date(), expires.hour, expires.minute) == (dt.date(NEXT_YEAR, 3, 31), 23, 59)


@pytest.mark.parametrize(
    "value, message",
    [
        ("next tuesday", "Enter a date (YYYY-MM-DD) or a date and time"),
        (f"{NEXT_YEAR}-02-30T10:00", "Enter a date (YYYY-MM-DD) or a date and time"),
        (f"{NEXT_YEAR}-13-01", "Enter a date (YYYY-MM-DD) or a date and time"),
        ("2001-01-01T00:00", "Give a time in the future."),
    ],
)
def test_a_bad_expiry_is_a_field_error_on_the_team_page(client, people, tool, value, message):
    login(client, people["bob"])
    r = client.post("/teams/payments/grants/", {"tool": "aider", "expires_at": value, "seats": "3"})
    assert r.status_code == 400
    page = r.content.decode()
    # the team page again, the grant form keeps what was typed and says what is wrong next to the field
    assert "<h1>Payments</h1>" in page and "The grant was not made" in page
    assert message in page and 'id="id_expires_at_errors"' in page
    assert 'name="seats"' in page and 'value="3"' in page
    assert not AccessGrant.objects.exists()


def test_other_refusals_come_back_on_the_form(client, people, tool, teams):
    login(client, people["bob"])
    r = client.post("/teams/payments/grants/", {"tool": "aider", "seats": "0"})
    assert r.status_code == 400 and "Ensure this value is greater than or equal to 1." in r.content.decode()
    access.grant_create(actor=people["bob"], team=teams["payments"], tool=tool)
    r = client.post("/teams/payments/grants/", {"tool": "aider"})
    assert r.status_code == 409 and "already holds a grant for Aider" in r.content.decode()
    tool_ban(tool=tool, actor=people["bob"], reason="leak")
    r = client.post("/teams/search/grants/", {"tool": "aider"})
    assert r.status_code == 400 and "Choose an approved tool" in r.content.decode()
    assert AccessGrant.objects.filter(team__slug="search").count() == 0


def test_approving_a_request_with_an_expiry_from_the_queue(client, settings, people, tool, teams):
    settings.TIME_ZONE = "Asia/Tokyo"
    req = access.access_request_create(actor=people["alice"], tool=tool, team=teams["payments"], justification="x")
    login(client, people["bob"])
    url = f"/access-requests/{req.pk}/approve/"
    bad = client.post(url, {"reason": "ok", "expires_at": "soon"}, HTTP_HX_REQUEST="true")
    assert bad.status_code < 500 and "Enter a date (YYYY-MM-DD)" in bad.content.decode()
    assert AccessRequest.objects.get().status == "pending"
    ok = client.post(url, {"reason": "ok", "expires_at": f"{NEXT_YEAR}-06-01T18:00"}, HTTP_HX_REQUEST="true")
    assert ok.status_code == 200 and "Approved" in ok.content.decode()
    assert grant_of().expires_at == dt.datetime(NEXT_YEAR, 6, 1, 18, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))


# --- "Request access" only where a grant helps -------------------------------------------------------------


def panel(client, slug="aider", classification="internal") -> str:
    return client.get(f"/tools/{slug}/access-panel/?classification={classification}").content.decode()


def test_request_access_is_offered_for_a_missing_grant_in_words(client, people, tool):
    login(client, people["alice"])
    html = panel(client)
    assert "Request access" in html and "No grant for your team" in html
    assert "no_grant" not in html and "<code>" not in html


@pytest.mark.parametrize(
    "status, review_due, classification, reason",
    [
        ("banned", None, "internal", "Tool banned"),
        ("retired", None, "internal", "Tool not approved"),
        ("in_review", None, "internal", "Tool not approved"),
        ("approved", dt.date(2001, 1, 1), "internal", "Approval expired"),
        ("approved", None, "restricted", "Data too sensitive for the tool"),
    ],
)
def test_no_request_access_where_a_grant_cannot_help(client, people, tool, status, review_due, classification, reason):
    AITool.objects.filter(pk=tool.pk).update(status=status, review_due=review_due)
    login(client, people["alice"])
    html = panel(client, classification=classification)
    assert "Not allowed" in html and reason in html
    assert "Request access" not in html and "A grant would not change this" in html


def test_no_request_access_when_the_team_already_has_access_or_asked(client, people, tool, teams):
    login(client, people["alice"])
    access.access_request_create(actor=people["carol"], tool=tool, team=teams["payments"], justification="x")
    html = panel(client)
    assert "Request access" not in html and "request for Payments is pending" in html
    req = AccessRequest.objects.get()
    access.access_request_approve(access_request=req, actor=people["bob"], reason="ok")
    html = panel(client)
    assert "Allowed" in html and "Request access" not in html
    # a grant narrower than the data: a request for the same team cannot widen it (approving keeps the grant)
    AccessGrant.objects.update(max_data_classification="internal")
    html = panel(client, classification="confidential")
    assert "Data too sensitive for the grant" in html and "Request access" not in html
    assert "Each of your teams already holds a grant" in html


def test_a_refused_request_comes_back_in_the_panel_with_its_status(client, people, tool):
    login(client, people["alice"])
    tool_ban(tool=tool, actor=people["bob"], reason="leak")
    r = client.post(
        "/tools/aider/request-access/", {"team": "payments", "justification": "need it"}, HTTP_HX_REQUEST="true"
    )
    assert r.status_code == 409
    html = r.content.decode()
    assert 'id="access-panel-aider"' in html and "access can be requested only for approved tools" in html
    assert not AccessRequest.objects.exists()


def test_the_team_page_says_why_a_grant_is_unusable_in_words(client, people, tool, teams):
    access.grant_create(actor=people["bob"], team=teams["payments"], tool=tool)
    AITool.objects.filter(pk=tool.pk).update(review_due=dt.date(2001, 1, 1))
    login(client, people["alice"])
    html = client.get("/teams/payments/").content.decode()
    assert "Approval expired" in html and "review_expired" not in html
