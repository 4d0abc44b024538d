"""Repositories API and services: a role matrix that also checks nothing changes on a denial, 404 for
other teams' repositories, 400 for hostile URLs and paths, and a credential that never comes back."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.models import AuditEvent, Repository
from catalog.services import repositories as repo_services
from catalog.services.errors import InvalidInput, NotPermitted
from tests.repository_helpers import fresh_home, git_init

pytestmark = pytest.mark.django_db

URL = "/api/v1/repositories/"
SECRET = "ghp_s3cr3t-token-value-4321"
ROTATED = "ghp_rotated-token-value-8765"


@pytest.fixture
def home(settings, tmp_path, monkeypatch) -> Path:
    return fresh_home(settings, tmp_path, monkeypatch)


@pytest.fixture
def repos(people, home) -> dict[str, Repository]:
    """pay (payments), srch (search), shared (both), plat (platform only, with a credential)."""
    bob = people["bob"]
    local = git_init(home / "repositories" / "shared")
    specs = {
        "pay": (["payments"], "https://github.com/acme/pay.git", None),
        "srch": (["search"], "ssh://git@github.com/acme/search.git", None),
        "shared": (["payments", "search"], str(local), None),
        "plat": (["platform"], "https://gitlab.example.com/platform/infra.git", "glpat-platform-0000"),
    }
    return {
        slug: repo_services.repository_create(
            actor=bob,
            slug=slug,
            name=slug.title(),
            url=url,
            teams=teams,
            data_classification="internal",
            credential=credential,
        )
        for slug, (teams, url, credential) in specs.items()
    }


def _state():
    rows = Repository.objects.order_by("slug").values_list(
        "slug", "name", "url", "data_classification", "default_branch", "credential_ciphertext", "credential_last4"
    )
    links = Repository.teams.through.objects.order_by("repository_id", "team_id").values_list(
        "repository_id", "team_id"
    )
    return list(rows), list(links), AuditEvent.objects.count()


def _body(**overrides):
    return {
        "slug": "new-repo",
        "name": "New repo",
        "url": "https://github.com/acme/new.git",
        "teams": ["payments"],
        "data_classification": "confidential",
        "default_branch": "main",
        **overrides,
    }


def _slugs(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [r["slug"] for r in response.json()["results"]]


# --- role matrix ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "who,visible",
    [
        ("alice", ["pay", "shared"]),
        ("dave", ["shared", "srch"]),
        ("carol", ["pay", "shared", "srch"]),
        ("bob", ["pay", "plat", "shared", "srch"]),
        ("erin", ["pay", "plat", "shared", "srch"]),
        ("admin", ["pay", "plat", "shared", "srch"]),
    ],
)
def test_list_and_detail_show_only_what_the_caller_may_see(api, people, repos, who, visible):
    client = api(people[who])
    assert _slugs(client.get(URL)) == visible
    for slug in repos:
        response = client.get(f"{URL}{slug}/")
        assert response.status_code == (200 if slug in visible else 404)
    assert _slugs(client.get(URL, {"team": "payments"})) == [s for s in visible if s in ("pay", "shared")]


@pytest.mark.parametrize(
    "who,allowed",
    [("alice", False), ("dave", False), ("carol", False), ("erin", False), ("bob", True), ("admin", True)],
)
def test_writes_role_matrix(api, people, repos, who, allowed):
    client = api(people[who])
    before = _state()
    created = client.post(URL, _body(), format="json")
    target = "shared"  # visible to every role, so denials are 403s, not 404s
    updated = client.patch(f"{URL}{target}/", {"name": "Renamed"}, format="json")
    if not allowed:
        assert (created.status_code, updated.status_code) == (403, 403)
        assert client.delete(f"{URL}{target}/").status_code == 403
        assert client.post(URL, {"nonsense": 1}, format="json").status_code == 403  # before reading the body
        assert _state() == before  # nothing written, no audit event
        return
    assert created.status_code == 201, created.content
    assert updated.status_code == 200 and updated.json()["name"] == "Renamed"
    assert client.delete(f"{URL}new-repo/").status_code == 204
    assert not Repository.objects.filter(slug="new-repo").exists()
    verbs = list(AuditEvent.objects.filter(target_type="repository").values_list("verb", flat=True).order_by("id"))
    assert verbs[-3:] == ["repository.created", "repository.updated", "repository.deleted"]


def test_other_teams_repositories_are_404_for_every_verb(api, people, repos):
    client = api(people["alice"])
    before = _state()
    for slug in ("srch", "plat", "missing"):
        assert client.get(f"{URL}{slug}/").status_code == 404
        assert client.patch(f"{URL}{slug}/", {"name": "x"}, format="json").status_code == 404
        assert client.delete(f"{URL}{slug}/").status_code == 404
    assert _state() == before


def test_anonymous_is_401(api, repos):
    assert api().get(URL).status_code == 401
    assert api().post(URL, _body(), format="json").status_code == 401
    assert Repository.objects.count() == 4


def test_put_is_not_offered(api, people, repos):
    assert api(people["bob"]).put(f"{URL}pay/", _body(slug="pay"), format="json").status_code == 405


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "http://127.0.0.1/x"}, "url"),
        ({"url": "https://127.0.0.1/x"}, "url"),
        ({"url": "ssh://git@127.0.0.1:5432/x"}, "url"),
        ({"url": "https://2130706433/x"}, "url"),
        ({"url": "https://[::ffff:127.0.0.1]/x"}, "url"),
        ({"url": "https://169.254.169.254/latest"}, "url"),
        ({"url": "https://localhost:6379/x"}, "url"),
        ({"url": "ext::sh -c id"}, "url"),
        ({"url": "git@github.com:acme/x.git"}, "url"),
        ({"url": "https://bob:hunter2@github.com/acme/x.git"}, "url"),
        ({"url": "/etc"}, "url"),
        ({"url": "relative/path"}, "url"),
        ({"teams": ["nope"]}, "teams"),
        ({"teams": []}, "teams"),
        ({"teams": "payments"}, "teams"),
        ({"slug": "Bad Slug"}, "slug"),
        ({"slug": "pay"}, "slug"),  # taken
        ({"name": ""}, "name"),
        ({"data_classification": "top-secret"}, "data_classification"),
        ({"default_branch": "-x"}, "default_branch"),
        ({"default_branch": "--upload-pack=touch /tmp/x"}, "default_branch"),
        ({"default_branch": "a..b"}, "default_branch"),
        ({"default_branch": "main.lock"}, "default_branch"),
        ({"default_branch": "feature/ x"}, "default_branch"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_input_is_400_with_field_errors(api, people, repos, overrides, field):
    before = _state()
    response = api(people["bob"]).post(URL, _body(**overrides), format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert _state() == before


def test_local_path_outside_the_roots_and_non_repository_are_400(api, people, repos, home, tmp_path):
    """The attack: register another team's checkout on the worker, or any folder, as a repository."""
    elsewhere = git_init(tmp_path / "other-team" / "secret")
    plain = home / "repositories" / "plain"
    plain.mkdir()
    link = home / "repositories" / "innocent"
    link.symlink_to(elsewhere)
    client = api(people["bob"])
    before = _state()
    for path, message in (
        (elsewhere, "must live under"),
        (link, "must live under"),
        (plain, "No git repository"),
        (f"{home}/repositories/../../other-team/secret", ".."),
    ):
        response = client.post(URL, _body(url=str(path)), format="json")
        assert response.status_code == 400
        assert message in response.json()["url"][0]
    assert _state() == before
    ok = client.post(URL, _body(url=f"{home}/repositories/shared/"), format="json")
    assert ok.status_code == 201 and ok.json()["url"] == f"{home}/repositories/shared"


def test_patch_checks_the_same_rules(api, people, repos):
    client = api(people["bob"])
    before = _state()
    for body, field in (
        ({"url": "http://127.0.0.1/x"}, "url"),
        ({"slug": "renamed"}, "slug"),
        ({"teams": ["nope"]}, "teams"),
        ({"default_branch": "-b"}, "default_branch"),
    ):
        response = client.patch(f"{URL}pay/", body, format="json")
        assert response.status_code == 400 and field in response.json()
    assert _state() == before


def test_allowed_host_may_be_private(api, people, repos, settings):
    settings.GOLDPATH = {**settings.GOLDPATH, "ALLOWED_GIT_HOSTS": "127.0.0.1:3000"}
    response = api(people["bob"]).post(URL, _body(url="https://127.0.0.1:3000/acme/x.git"), format="json")
    assert response.status_code == 201


# --- credential -------------------------------------------------------------------------------


def test_credential_is_write_only_encrypted_and_never_audited(api, people, repos):
    client = api(people["bob"])
    bodies = []
    response = client.post(URL, _body(credential=SECRET), format="json")
    bodies.append(response.content.decode())
    assert response.status_code == 201
    data = response.json()
    assert "credential" not in data and data["has_credential"] is True and data["credential_last4"] == "4321"
    repo = Repository.objects.get(slug="new-repo")
    assert SECRET not in repo.credential_ciphertext and repo.credential() == SECRET

    # keep (omitted or null), replace, clear
    for body, expected in (({"name": "N"}, SECRET), ({"credential": None}, SECRET), ({"credential": ROTATED}, ROTATED)):
        response = client.patch(f"{URL}new-repo/", body, format="json")
        bodies.append(response.content.decode())
        assert response.status_code == 200
        repo.refresh_from_db()
        assert repo.credential() == expected
    assert response.json()["credential_last4"] == "8765"
    response = client.patch(f"{URL}new-repo/", {"credential": ""}, format="json")
    assert response.json()["has_credential"] is False and response.json()["credential_last4"] == ""
    repo.refresh_from_db()
    assert repo.credential() == "" and repo.credential_ciphertext == ""

    for who in ("bob", "alice", "erin", "admin"):
        bodies.append(api(people[who]).get(URL).content.decode())
        bodies.append(api(people[who]).get(f"{URL}new-repo/").content.decode())
    for body in bodies:
        assert SECRET not in body and ROTATED not in body
    events = AuditEvent.objects.filter(target_type="repository", target_repr="new-repo")
    assert events.count() == 4  # create, rename, replace, clear (a null credential changes nothing)
    for event in events:
        assert SECRET not in str(event.payload) and ROTATED not in str(event.payload)
    replaced = events.filter(verb="repository.updated", payload__last4=["4321", "8765"]).get()
    assert replaced.payload["changed_fields"] == ["credential"]


# --- services ---------------------------------------------------------------------------------


def test_repository_for_use_is_team_scoped_with_one_message(people, repos):
    assert repo_services.repository_for_use(actor=people["alice"], slug="pay") == repos["pay"]
    assert repo_services.repository_for_use(actor=people["dave"], slug="shared") == repos["shared"]
    assert repo_services.repository_for_use(actor=people["bob"], slug="srch") == repos["srch"]
    assert repo_services.repository_for_use(actor=people["admin"], slug="plat") == repos["plat"]
    for who, slug in (("alice", "srch"), ("alice", "plat"), ("alice", "missing"), ("carol", "pay"), ("erin", "pay")):
        with pytest.raises(InvalidInput) as err:
            repo_services.repository_for_use(actor=people[who], slug=slug)
        assert err.value.errors == {"repository": [f"No repository {slug} is registered for your teams."]}
    people["alice"].is_active = False
    with pytest.raises(InvalidInput):
        repo_services.repository_for_use(actor=people["alice"], slug="pay")


def test_services_refuse_non_platform_actors(people, repos):
    before = _state()
    for who in ("alice", "carol", "erin"):
        with pytest.raises(NotPermitted):
            repo_services.repository_create(
                actor=people[who], slug="x", name="X", url="https://github.com/a/x.git", teams=["payments"]
            )
        with pytest.raises(NotPermitted):
            repo_services.repository_update(repository=repos["pay"], actor=people[who], name="Y")
        with pytest.raises(NotPermitted):
            repo_services.repository_delete(repository=repos["pay"], actor=people[who])
    assert _state() == before


def test_update_records_changes_and_is_quiet_when_nothing_changes(people, repos):
    bob = people["bob"]
    events = AuditEvent.objects.count()
    repo_services.repository_update(repository=repos["pay"], actor=bob, name="Pay", teams=["payments"])
    assert AuditEvent.objects.count() == events
    repo = repo_services.repository_update(repository=repos["pay"], actor=bob, teams=["search", "payments"])
    assert sorted(repo.teams.values_list("slug", flat=True)) == ["payments", "search"]
    event = AuditEvent.objects.latest("id")
    assert event.verb == "repository.updated"
    assert event.payload["changes"] == {"teams": [["payments"], ["payments", "search"]]}
    with pytest.raises(InvalidInput):
        repo_services.repository_update(repository=repos["pay"], actor=bob, owner="x")


def test_nothing_uses_a_fresh_repository(repos):
    assert repo_services._in_use(repos["pay"]) == []


@pytest.mark.parametrize(
    "name,ok",
    [
        ("main", True),
        ("release/1.2", True),
        ("feature-x_y", True),
        ("-main", False),
        ("", False),
        ("@", False),
        ("a..b", False),
        ("a/.hidden", False),
        ("a//b", False),
        ("a/", False),
        ("/a", False),
        ("a.", False),
        ("a.lock", False),
        ("a@{1}", False),
        ("a b", False),
        ("a~1", False),
        ("a^", False),
        ("a:b", False),
        ("a?", False),
        ("a*", False),
        ("a[", False),
        ("a\\b", False),
        ("a\nb", False),
        ("x" * 251, False),
    ],
)
def test_valid_ref_name(name, ok):
    assert repo_services.valid_ref_name(name) is ok
