"""Vendor API keys page: platform engineers and admins only (like the API), keys masked per team and tool,
add/replace/rotate/delete through the services with field errors; the key never appears in any page."""

from __future__ import annotations

import pytest

from catalog.agents import crypto
from catalog.models import AuditEvent, VendorApiKey
from catalog.services import vendor_keys as agent_services
from tests.agent_helpers import demo_tool

pytestmark = pytest.mark.django_db

SECRET = "sk-live-abcdef0123456789"
ROTATED = "sk-live-rotated-99998888"


@pytest.fixture
def demo(people, teams):
    return demo_tool(people, teams)


@pytest.fixture
def existing(people, teams, demo):
    return agent_services.vendor_api_key_set(
        team=teams["search"], tool=demo, actor=people["bob"], env_var="DEMO_API_KEY", value="sk-old-key-00001111"
    )


class Bodies:
    """A test client that remembers every response body, to check the secret never comes back."""

    def __init__(self, client):
        self.client, self.seen = client, []

    def __getattr__(self, name):
        method = getattr(self.client, name)
        if name not in ("get", "post"):
            return method

        def call(*args, **kwargs):
            response = method(*args, **kwargs)
            self.seen.append(response.content.decode())  # with follow=True: the page redirected to
            return response

        return call

    def assert_never_shown(self, *secrets):
        assert self.seen
        for body in self.seen:
            for secret in secrets:
                assert secret not in body


def _state():
    return sorted(VendorApiKey.objects.values_list("team__slug", "tool__slug", "env_var", "ciphertext", "last4"))


@pytest.mark.parametrize(
    "who,allowed",
    [
        ("alice", False),
        ("dave", False),
        ("carol", False),
        ("erin", False),
        ("bob", True),
        ("frank", True),
        ("admin", True),
    ],
)
def test_permission_matrix(client, people, existing, who, allowed):
    before, events = _state(), AuditEvent.objects.count()
    client.force_login(people[who])
    nav = client.get("/").content.decode()
    assert ('href="/vendor-keys/"' in nav) == allowed
    expected = 200 if allowed else 403
    assert client.get("/vendor-keys/").status_code == expected
    if allowed:
        return
    body = {"team": "payments", "tool": "demo-agent", "env_var": "DEMO_API_KEY", "value": SECRET}
    assert client.post("/vendor-keys/", body).status_code == 403
    assert client.post(f"/vendor-keys/{existing.pk}/delete/").status_code == 403
    assert _state() == before and AuditEvent.objects.count() == events  # nothing changed


def test_anonymous_is_sent_to_sign_in(client, existing):
    for response in (client.get("/vendor-keys/"), client.post(f"/vendor-keys/{existing.pk}/delete/")):
        assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert VendorApiKey.objects.count() == 1


def test_add_rotate_and_delete_a_key(client, people, teams, existing):
    bob = Bodies(client)
    client.force_login(people["bob"])
    page = bob.get("/vendor-keys/").content.decode()
    assert "DEMO_API_KEY" in page and "********1111" in page and 'type="password"' in page

    body = {"team": "payments", "tool": "demo-agent", "env_var": "DEMO_API_KEY", "value": SECRET}
    response = bob.post("/vendor-keys/", body, follow=True)
    assert response.redirect_chain == [("/vendor-keys/", 302)]
    page = response.content.decode()
    assert "Stored DEMO_API_KEY for payments × demo-agent (********6789)." in page
    key = VendorApiKey.objects.get(team=teams["payments"])
    assert crypto.decrypt(key.ciphertext) == SECRET and key.last4 == "6789" and key.created_by == people["bob"]
    assert f'id="vendor-key-{key.pk}"' in page and "Payments" in page and "Search" in page

    # rotate: the link prefills team, tool and variable, never the key
    page = bob.get("/vendor-keys/?team=payments&tool=demo-agent&env_var=DEMO_API_KEY").content.decode()
    assert "Rotate a key" in page and 'value="payments" selected' in page and 'value="DEMO_API_KEY"' in page
    response = bob.post("/vendor-keys/", {**body, "value": ROTATED})
    assert response.status_code == 302
    key.refresh_from_db()
    assert crypto.decrypt(key.ciphertext) == ROTATED and key.last4 == "8888"
    assert VendorApiKey.objects.count() == 2
    assert list(
        AuditEvent.objects.filter(target_type="vendorapikey").values_list("verb", flat=True).order_by("id")
    ) == [
        "vendor_api_key.created",  # the fixture's search key
        "vendor_api_key.created",
        "vendor_api_key.replaced",
    ]

    # delete
    response = bob.post(f"/vendor-keys/{key.pk}/delete/", follow=True)
    assert "Deleted DEMO_API_KEY of payments × demo-agent" in response.content.decode()
    assert not VendorApiKey.objects.filter(pk=key.pk).exists()
    assert AuditEvent.objects.filter(verb="vendor_api_key.deleted", payload__last4="8888").exists()
    assert bob.post("/vendor-keys/999999/delete/").status_code == 404
    bob.assert_never_shown(SECRET, ROTATED)
    for event in AuditEvent.objects.filter(target_type="vendorapikey"):
        assert SECRET not in str(event.payload) and ROTATED not in str(event.payload)


@pytest.mark.parametrize(
    "change,field,message",
    [
        ({"env_var": "PATH"}, "env_var", "upper-case environment variable"),
        ({"env_var": "lower_case"}, "env_var", "upper-case environment variable"),
        ({"env_var": "GOLDPATH_TOKEN"}, "env_var", "upper-case environment variable"),
        ({"env_var": ""}, "env_var", "This field is required."),
        ({"value": "short"}, "value", "8 characters or more"),
        ({"team": "nope"}, "team", "Select a valid choice."),
        ({"tool": "nope"}, "tool", "Select a valid choice."),
    ],
)
def test_bad_input_shows_field_errors_and_stores_nothing(client, people, demo, change, field, message):
    bob = Bodies(client)
    client.force_login(people["bob"])
    body = {"team": "payments", "tool": "demo-agent", "env_var": "DEMO_API_KEY", "value": SECRET, **change}
    response = bob.post("/vendor-keys/", body)
    assert response.status_code == 400
    page = response.content.decode()
    errors = page.split(f'id="id_{field}_errors"', 1)
    assert len(errors) == 2 and message in errors[1].split("</ul>", 1)[0]
    assert VendorApiKey.objects.count() == 0 and not AuditEvent.objects.filter(target_type="vendorapikey").exists()
    bob.assert_never_shown(SECRET)
