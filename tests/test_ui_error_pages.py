"""Branded 403, 404 and 500 pages (issue 14), as the portal serves them with DEBUG off: the reason a view gave
for a 403, a way back to the catalog (under whatever prefix), a reference for a 500, JSON for a JSON client."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def production(settings):
    settings.DEBUG = False


def signed_in(user) -> Client:
    client = Client(raise_request_exception=False)
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_a_developer_on_a_platform_page_gets_the_branded_403(people):
    r = signed_in(people["alice"]).get("/reviews/")
    assert r.status_code == 403 and r["Content-Type"].startswith("text/html")
    page = r.content.decode()
    assert "<title>Not allowed (403) · Goldpath</title>" in page and "Error 403" in page
    assert "The review queue is for platform engineers." in page  # the view's own reason
    assert 'href="/">Back to the catalog</a>' in page
    for path in ("/vendor-keys/", "/audit/", "/reports/adoption/"):
        assert "Error 403" in signed_in(people["alice"]).get(path).content.decode(), path


def test_a_refused_post_gets_the_branded_403_too(people, teams):
    r = signed_in(people["alice"]).post("/teams/payments/grants/", {"tool": "x"})
    assert r.status_code == 403 and "Only platform engineers grant tool access." in r.content.decode()


def test_404_is_branded_and_says_nothing_internal(people):
    client = signed_in(people["alice"])
    for path in ("/no-such-page/", "/tools/no-such-tool/", "/teams/no-such-team/"):
        r = client.get(path)
        assert r.status_code == 404, path
        page = r.content.decode()
        assert "Page not found" in page and "Error 404" in page and "Back to the catalog" in page
        assert "matches the given query" not in page and "Traceback" not in page


@pytest.mark.urls("tests.ui_error_urls")
def test_500_is_branded_with_a_reference(people):
    r = signed_in(people["alice"]).get("/boom/", HTTP_X_REQUEST_ID="ref-12345")
    assert r.status_code == 500
    page = r.content.decode()
    assert "Something went wrong" in page and "Error 500" in page and "ref-12345" in page
    assert "a bug in a view" not in page and "RuntimeError" not in page


def test_a_json_client_gets_json(people):
    r = signed_in(people["alice"]).get("/reviews/", HTTP_ACCEPT="application/json")
    assert r.status_code == 403 and r.json()["detail"] == "The review queue is for platform engineers."
    r = signed_in(people["alice"]).get("/no-such-page/", HTTP_ACCEPT="application/json")
    assert r.status_code == 404 and "nothing here" in r.json()["detail"]


@pytest.mark.urls("tests.ui_prefixed_urls")
def test_the_way_back_follows_the_host_prefix():
    """Under a host's prefix the link goes to the catalog there, not to the site root."""
    r = Client().get("/portal/goldpath/no-such-page/")
    assert r.status_code == 404 and 'href="/portal/goldpath/">Back to the catalog</a>' in r.content.decode()


def test_a_form_from_an_out_of_date_page_gets_the_branded_expired_page(db):
    from django.test import Client

    from tests.factories import UserFactory

    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(username="bob", role="platform_engineer"))
    answer = client.post("/teams/new/", {"slug": "x", "name": "X"})  # no CSRF token: an old tab's form
    assert answer.status_code == 403
    body = answer.content.decode()
    assert "This form has expired" in body and "nothing was changed" in body and "Goldpath" in body
