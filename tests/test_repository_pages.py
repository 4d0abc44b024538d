"""Repositories page: everyone sees their teams' repositories; platform engineers and admins register,
edit and delete through the services (field errors on the form); the credential never appears in a page."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.models import AuditEvent, Repository
from catalog.services import repositories as repo_services
from tests.repository_helpers import fresh_home, git_init

pytestmark = pytest.mark.django_db

PAGE = "/repositories/"
SECRET = "ghp_page-secret-value-2468"


@pytest.fixture
def home(settings, tmp_path, monkeypatch) -> Path:
    return fresh_home(settings, tmp_path, monkeypatch)


@pytest.fixture
def repos(people, home):
    bob = people["bob"]
    return {
        "pay": repo_services.repository_create(
            actor=bob,
            slug="pay",
            name="Payments API",
            url="https://github.com/acme/pay.git",
            teams=["payments"],
            credential="old-credential-1357",
        ),
        "srch": repo_services.repository_create(
            actor=bob, slug="srch", name="Search index", url="https://github.com/acme/srch.git", teams=["search"]
        ),
    }


def _state():
    rows = Repository.objects.order_by("slug").values_list("slug", "name", "url", "credential_ciphertext")
    return list(rows), AuditEvent.objects.count()


@pytest.mark.parametrize(
    "who,sees,manages",
    [
        ("alice", ["pay"], False),
        ("dave", ["srch"], False),
        ("carol", ["pay", "srch"], False),
        ("erin", ["pay", "srch"], False),
        ("bob", ["pay", "srch"], True),
        ("admin", ["pay", "srch"], True),
    ],
)
def test_list_page_role_matrix(client, people, repos, who, sees, manages):
    client.force_login(people[who])
    response = client.get(PAGE)
    assert response.status_code == 200
    page = response.content.decode()
    assert f'href="{PAGE}"' in page  # nav link for everyone
    for slug in ("pay", "srch"):
        assert (f'id="repository-{slug}"' in page) == (slug in sees)
    assert ("Register a repository" in page) == manages
    assert ('href="/repositories/pay/edit/"' in page) == (manages and "pay" in sees)
    if "pay" in sees:
        assert "********1357" in page
    assert "old-credential-1357" not in page
    if manages:
        return
    before = _state()
    body = {"slug": "x", "name": "X", "url": "https://github.com/acme/x.git", "teams": ["payments"]}
    assert client.post(PAGE, body).status_code == 403
    for slug in ("pay", "srch"):
        expected = 403 if slug in sees else 404
        assert client.get(f"/repositories/{slug}/edit/").status_code == expected
        assert client.post(f"/repositories/{slug}/edit/", {**body, "slug": slug}).status_code == expected
        assert client.post(f"/repositories/{slug}/delete/").status_code == expected
    assert _state() == before


def test_anonymous_is_sent_to_sign_in(client, repos):
    for response in (client.get(PAGE), client.post("/repositories/pay/delete/")):
        assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert Repository.objects.count() == 2


def test_register_edit_and_delete(client, people, repos, home):
    git_init(home / "repositories" / "svc")
    client.force_login(people["bob"])
    seen = []
    body = {
        "slug": "svc",
        "name": "Service",
        "url": str(home / "repositories" / "svc"),
        "teams": ["payments", "search"],
        "data_classification": "confidential",
        "default_branch": "main",
        "credential": SECRET,
    }
    response = client.post(PAGE, body, follow=True)
    seen.append(response.content.decode())
    assert response.redirect_chain == [(PAGE, 302)]
    assert "Registered repository svc." in seen[-1] and "********2468" in seen[-1]
    repo = Repository.objects.get(slug="svc")
    assert repo.credential() == SECRET and repo.data_classification == "confidential"
    assert sorted(repo.teams.values_list("slug", flat=True)) == ["payments", "search"]

    # edit: the form is prefilled, never with the credential; an empty credential keeps it
    page = client.get("/repositories/svc/edit/").content.decode()
    seen.append(page)
    assert 'value="Service"' in page and 'type="password"' in page and "disabled" in page
    edit = {**body, "name": "Service two", "credential": "", "slug": "ignored"}
    response = client.post("/repositories/svc/edit/", edit, follow=True)
    seen.append(response.content.decode())
    assert "Saved repository svc." in seen[-1]
    repo.refresh_from_db()
    assert (repo.slug, repo.name, repo.credential()) == ("svc", "Service two", SECRET)

    # clear it
    response = client.post("/repositories/svc/edit/", {**edit, "clear_credential": "on"})
    assert response.status_code == 302
    repo.refresh_from_db()
    assert repo.credential() == "" and not repo.has_credential

    # delete
    response = client.post("/repositories/svc/delete/", follow=True)
    assert "Deleted repository svc." in response.content.decode()
    assert not Repository.objects.filter(slug="svc").exists()
    assert client.post("/repositories/svc/delete/").status_code == 404
    for body_text in seen:
        assert SECRET not in body_text
    for event in AuditEvent.objects.filter(target_type="repository"):
        assert SECRET not in str(event.payload)


@pytest.mark.parametrize(
    "change,field,message",
    [
        ({"url": "http://127.0.0.1/x"}, "url", "scheme is not accepted"),
        ({"url": "https://127.0.0.1/x"}, "url", "loopback"),
        ({"url": "ssh://git@127.0.0.1:5432/x"}, "url", "loopback"),
        ({"url": "file:///etc"}, "url", "scheme is not accepted"),
        ({"url": "/etc"}, "url", "must live under"),
        ({"slug": "pay"}, "slug", "already exists"),
        ({"slug": "Not a slug"}, "slug", "lowercase"),
        ({"default_branch": "-x"}, "default_branch", "branch name"),
        ({"teams": ["nope"]}, "teams", "nope"),
    ],
)
def test_register_errors_are_shown_on_the_form(client, people, repos, change, field, message):
    client.force_login(people["bob"])
    before = _state()
    body = {
        "slug": "svc",
        "name": "Service",
        "url": "https://github.com/acme/svc.git",
        "teams": ["payments"],
        "data_classification": "internal",
        "default_branch": "main",
        "credential": SECRET,
        **change,
    }
    response = client.post(PAGE, body)
    assert response.status_code == 400
    page = response.content.decode()
    assert f"id_{field}_errors" in page and message in page
    assert SECRET not in page
    assert _state() == before


def test_edit_errors_keep_the_repository(client, people, repos):
    client.force_login(people["bob"])
    before = _state()
    body = {"name": "X", "url": "https://[::1]/x", "teams": ["payments"], "data_classification": "internal"}
    response = client.post("/repositories/pay/edit/", {**body, "default_branch": "main"})
    assert response.status_code == 400 and "loopback" in response.content.decode()
    assert _state() == before
