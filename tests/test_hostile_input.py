"""Bad input is a 400/415, never a 500: deep or huge JSON, wrong content types, clashing archive names,
git refs that look like options, and `next=` redirects off-site."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver, resolve
from rest_framework.authtoken.models import Token
from rest_framework.parsers import JSONParser

from catalog import safejson
from catalog.api import urls as api_urls
from catalog.api.parsers import SafeJSONParser
from catalog.gitrefs import ref_error
from catalog.models import (
    AccessGrant,
    AuditEvent,
    TemplateVersion,
    UsageEvent,
    Workspace,
    WorkspaceBuild,
)
from catalog.runners import terraform as tf
from catalog.services import access
from tests.factories import ToolFactory
from tests.tf.templates import session_values
from tests.workspace_helpers import published_template

DEEP = "[" * 3000 + "]" * 3000
API = "/api/v1/"
GOLDEN = Path(__file__).resolve().parent.parent / "catalog" / "golden_paths"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def post_json(client, url: str, body: str):
    return client.post(url, data=body, content_type="application/json")


# --- JSON depth and size --------------------------------------------------------------------------
@pytest.mark.django_db
def test_deep_json_to_the_token_endpoint_is_a_400_anonymously(people, api):
    before = AuditEvent.objects.count()
    for body in (DEEP, '{"username": "alice", "password": ' + DEEP + "}"):
        r = post_json(api(), API + "auth/token/", body)
        assert r.status_code == 400, r.content
        assert "deeper than 64 levels" in r.json()["detail"]
    assert not Token.objects.exists() and AuditEvent.objects.count() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "path"),
    [
        ("alice", "workspaces/"),
        ("bob", "tools/"),
        ("alice", "access-requests/"),
        ("bob", "grants/"),
        ("alice", "authz/check/"),
        ("alice", "agent-groups/"),
        ("bob", "vendor-keys/"),
        ("bob", "out-of-policy/bulk/"),
        ("admin", "users/"),
    ],
)
def test_deep_json_is_a_400_on_json_endpoints_and_writes_nothing(people, api, who, path):
    before = (AuditEvent.objects.count(), Workspace.objects.count(), AccessGrant.objects.count())
    client = api(people[who])
    r = post_json(client, API + path, DEEP)
    assert r.status_code == 400, r.content
    assert "deeper than 64 levels" in r.json()["detail"]
    # nested inside an otherwise plausible body, a few hundred levels (parses, but breaks what walks it)
    r = post_json(client, API + path, '{"name": "dev", "parameters": {"x": ' + nested(500) + "}}")
    assert r.status_code == 400, r.content
    assert (AuditEvent.objects.count(), Workspace.objects.count(), AccessGrant.objects.count()) == before


@pytest.mark.django_db
def test_json_larger_than_the_limit_is_a_400(people, api, settings):
    big = json.dumps({"username": "alice", "password": "x" * (2 * 1024 * 1024)})
    r = post_json(api(), API + "auth/token/", big)
    assert r.status_code == 400 and "larger than 2097152 bytes" in r.json()["detail"]
    settings.GOLDPATH = {**settings.GOLDPATH, "API_JSON_MAX_BYTES": 1000, "API_JSON_MAX_DEPTH": 3}
    r = post_json(api(people["alice"]), API + "authz/check/", json.dumps({"tool": "x" * 2000}))
    assert r.status_code == 400 and "larger than 1000 bytes" in r.json()["detail"]
    r = post_json(api(people["alice"]), API + "authz/check/", json.dumps({"tool": [[["x"]]]}))
    assert r.status_code == 400 and "deeper than 3 levels" in r.json()["detail"]


def test_safejson_limits_and_strictness():
    assert safejson.loads(nested(64)) == json.loads(nested(64))
    with pytest.raises(safejson.JSONTooDeep):
        safejson.loads(nested(65))
    with pytest.raises(safejson.JSONTooDeep):
        safejson.loads(DEEP * 2)
    assert safejson.depth_of({"a": [1, {"b": 2}]}, 64) == 3
    with pytest.raises(ValueError):
        safejson.loads('{"n": NaN}')


def _api_views():
    """(url regex, view class, parser classes, HTTP methods) of every catalog API route, actions included."""
    for entry in api_urls.urlpatterns:
        assert isinstance(entry, URLPattern) and not isinstance(entry, URLResolver)
        callback = entry.callback
        cls = callback.cls
        parsers = callback.initkwargs.get("parser_classes") or cls.parser_classes
        actions = getattr(callback, "actions", None)  # a viewset route: {method: action}
        methods = set(actions) if actions else {m for m in cls.http_method_names if hasattr(cls, m)}
        yield str(entry.pattern), cls, list(parsers), methods


def test_every_api_view_parses_json_with_the_limits():
    seen = 0
    for route, _cls, parsers, _methods in _api_views():
        seen += 1
        unsafe = [p for p in parsers if issubclass(p, JSONParser)]
        assert not unsafe, f"{route} parses JSON without a depth limit: {unsafe}"
        json_parsers = [p for p in parsers if p.media_type == "application/json"]
        assert all(issubclass(p, SafeJSONParser) or p.__module__ == "catalog.api.usage" for p in json_parsers), route
    assert seen > 30


def _sample_url(route: str) -> str:
    values = {"pk": "1", "slug": "nope", "number": "1", "username": "nobody", "id": "1"}
    url = route.lstrip("^").rstrip("$")
    url = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values.get(m.group(1), "1"), url)
    url = url.replace("<uuid:pk>", "00000000-0000-0000-0000-000000000000")  # path() routes (the WebSockets' 426)
    return API + url


BODIES = [
    (DEEP, "application/json"),
    ("a=b&parameters=x&parameters=y&file=z", "application/x-www-form-urlencoded"),
    ("just text", "text/plain"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "content_type"), BODIES, ids=["deep-json", "form", "text"])
def test_no_api_route_answers_500_to_hostile_bodies(people, api, body, content_type):
    """Every POST/PUT/PATCH route, as an admin: the body is refused (or the route refuses earlier), never a 500."""
    client = api(people["admin"])
    sent = 0
    for route, cls, _parsers, methods in _api_views():
        if "(?P<format>" in route:
            continue
        url = _sample_url(route)
        assert resolve(url).func.cls is cls, url
        for method in sorted(methods & {"post", "put", "patch"}):
            response = getattr(client, method)(url, data=body, content_type=content_type)
            assert response.status_code < 500, (method, url, response.content[:300])
            sent += 1
    assert sent > 25


# --- usage import content types -------------------------------------------------------------------
IMPORT = API + "usage-events/import/"


@pytest.mark.django_db
def test_form_encoded_import_is_a_415_and_imports_nothing(people, api):
    client = api(people["bob"])
    r = client.post(IMPORT, data="file=2026-01-05,tool_used,cursor", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415, r.content
    assert "multipart" in r.json()["detail"]
    r = client.post(IMPORT, data="<x/>", content_type="application/xml")
    assert r.status_code == 415
    assert not UsageEvent.objects.exists() and not AuditEvent.objects.filter(verb="usage.imported").exists()


@pytest.mark.django_db
def test_deep_copilot_json_is_a_400_and_imports_nothing(people, api):
    client = api(people["bob"])
    day = '[{"date": "2026-01-05", "total_active_users": 1, "x": ' + DEEP + "}]"
    r = client.post(IMPORT, data=day, content_type="application/json")
    assert r.status_code == 400, r.content
    assert "deeper than" in json.dumps(r.json())
    upload = io.BytesIO(day.encode())
    upload.name = "copilot.json"
    r = client.post(IMPORT, {"file": upload}, format="multipart")
    assert r.status_code == 400, r.content
    assert not UsageEvent.objects.exists()
    # a raw CSV body still works
    r = client.post(
        IMPORT + "?source=cursor-admin",
        data="occurred_at,kind,tool,team,user\n2026-01-05T10:00:00Z,tool_used,cursor,payments,alice\n",
        content_type="text/csv",
    )
    assert r.status_code == 201, r.content
    assert UsageEvent.objects.filter(source="import:cursor-admin").count() == 1


# --- template archives ----------------------------------------------------------------------------
def _tar(entries: list[tuple[str, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


TF = b'variable "x" {\n  type = string\n}\n'


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("a.tgz", _tar([("main.tf", TF), ("a", b"x"), ("a/b.tf", TF)]), "both a file and a folder"),
        ("b.tgz", _tar([("main.tf", TF), ("a/b.tf", TF), ("a", b"x")]), "both a file and a folder"),
        ("c.tgz", _tar([("main.tf", TF), ("a", None), ("a", b"x")]), "both a file and a folder"),
        ("d.tgz", _tar([("main.tf", TF), ("main.tf", b"# again")]), "twice"),
        ("e.tgz", _tar([("main.tf", TF), ("./x/../", None)]), ".."),
        ("f.zip", _zip([("main.tf", TF), ("a", b"x"), ("a/b.tf", TF)]), "both a file and a folder"),
        ("g.tgz", _tar([("main.tf", TF), ("n" * 300 + ".tf", TF)]), "cannot be extracted"),
    ],
)
def test_archive_name_clashes_are_a_400_and_write_nothing(people, api, name, data, message):
    published_template(slug="sandbox")
    before = TemplateVersion.objects.count(), AuditEvent.objects.count()
    upload = io.BytesIO(data)
    upload.name = name
    r = api(people["bob"]).post(API + "templates/sandbox/versions/", {"archive": upload}, format="multipart")
    assert r.status_code == 400, r.content
    assert message in " ".join(r.json()["errors"]["archive"])
    assert (TemplateVersion.objects.count(), AuditEvent.objects.count()) == before


# --- workspace refs -------------------------------------------------------------------------------
REF_TEMPLATE = [
    {"name": "ref", "type": "string", "default": "main", "description": "", "sensitive": False, "required": False},
    {"name": "labels", "type": "map(string)", "default": {}, "description": "", "sensitive": False, "required": False},
]
GOOD_REFS = ["main", "feature/login-2", "v1.2.3", "release-2026.01", "0123456789abcdef0123456789abcdef01234567", "HEAD"]
BAD_REFS = [
    "--orphan=x",
    "-b",
    "-",
    "",
    "a..b",
    "a b",
    "refs/heads/x.lock",
    ".hidden",
    "x/.y",
    "x/",
    "/x",
    "x//y",
    "x.",
    "@",
    "a@{1}",
    "a~1",
    "a^",
    "a:b",
    "a?",
    "a*",
    "a[",
    "a\\b",
    "a\tb",
    "a\x7f",
]


@pytest.fixture
def ref_world(people, teams):
    tool = ToolFactory(slug="claude-code", name="Claude Code", status="approved")
    access.grant_create(actor=people["bob"], team=teams["payments"], tool=tool)
    return published_template(slug="reftest", parameters=REF_TEMPLATE)


def test_ref_rules_match_git_check_ref_format():
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    for ref in GOOD_REFS + BAD_REFS:
        if ref.startswith("-") or not ref:
            assert ref_error(ref) is not None
            continue
        result = subprocess.run([git, "check-ref-format", "--allow-onelevel", ref], capture_output=True)
        assert (result.returncode == 0) == (ref_error(ref) is None), ref


@pytest.mark.django_db
@pytest.mark.parametrize("ref", ["--orphan=x", "-b", "a..b", "x.lock", "a b", "", ["main"]])
def test_a_bad_ref_is_a_400_at_creation(people, api, ref_world, ref):
    before = Workspace.objects.count(), WorkspaceBuild.objects.count()
    r = api(people["alice"]).post(
        API + "workspaces/",
        {"name": "dev", "template": "reftest", "parameters": {"ref": ref}, "tools": []},
        format="json",
    )
    assert r.status_code == 400, r.content
    assert "ref" in r.json()["errors"]["parameters"]
    assert (Workspace.objects.count(), WorkspaceBuild.objects.count()) == before


@pytest.mark.django_db
def test_good_refs_are_accepted_and_a_bad_one_is_a_400_at_update(people, api, ref_world):
    client = api(people["alice"])
    for index, ref in enumerate(GOOD_REFS):
        r = client.post(
            API + "workspaces/",
            {"name": f"dev-{index}", "template": "reftest", "parameters": {"ref": ref}, "tools": []},
            format="json",
        )
        assert r.status_code == 201, (ref, r.content)
        assert Workspace.objects.get(name=f"dev-{index}").parameters["ref"] == ref
        WorkspaceBuild.objects.update(status="succeeded")  # stay under the team's build quota
    ws = Workspace.objects.get(name="dev-0")
    Workspace.objects.filter(pk=ws.pk).update(status="running")
    builds = WorkspaceBuild.objects.count()
    r = client.post(f"{API}workspaces/{ws.pk}/update/", {"parameters": {"ref": "--orphan=x"}}, format="json")
    assert r.status_code == 400, r.content
    assert "ref" in r.json()["errors"]["parameters"]
    ws.refresh_from_db()
    assert ws.parameters["ref"] == "main" and WorkspaceBuild.objects.count() == builds


def test_the_local_sandbox_never_hands_a_ref_to_git_as_an_option(tmp_path):
    """Even a value that slipped past the portal: the template's shell refuses it before git sees it."""
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    run = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    run("init", "-q", "-b", "main")
    run("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "x")
    work = tmp_path / "tf"
    work.mkdir()
    for f in (GOLDEN / "local-sandbox").glob("*.tf"):
        (work / f.name).write_text(f.read_text())
    home = tmp_path / "h"
    values = {"repository": str(repo), "goldpath_workspace_id": "w", "goldpath_home": str(home), **session_values()}
    tf.write_var_file(work, {**values, "ref": "--orphan=pwned"})
    runner = tf.TerraformRunner(work)
    assert runner.init().ok
    result = runner.apply()
    assert not result.ok and "is not a branch, tag or commit" in result.error
    checkout = home / "workspaces" / "w" / "src"
    branches = subprocess.run(["git", "-C", str(checkout), "branch", "--list"], capture_output=True, text=True)
    assert "pwned" not in branches.stdout


@pytest.mark.django_db
def test_deep_json_in_a_workspace_form_is_a_400_page(client, people, ref_world):
    client.force_login(people["alice"])
    r = client.post("/golden-paths/reftest/new-workspace/", {"name": "dev", "labels": DEEP})
    assert r.status_code == 400
    assert b"levels deep at most" in r.content
    assert not Workspace.objects.exists()


# --- next= after a form ---------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("https://evil.example/", "/teams/payments/"),
        ("//evil.example/x", "/teams/payments/"),
        ("/\\evil.example", "/teams/payments/"),
        ("javascript:alert(1)", "/teams/payments/"),
        ("", "/teams/payments/"),
        ("/access-requests/", "/access-requests/"),
    ],
)
def test_revoke_redirects_only_on_site(client, people, teams, next_url, expected):
    tool = ToolFactory(slug="claude-code", status="approved")
    grant = access.grant_create(actor=people["bob"], team=teams["payments"], tool=tool)
    client.force_login(people["bob"])
    r = client.post(f"/grants/{grant.pk}/revoke/", {"reason": "budget", "next": next_url})
    assert r.status_code == 302
    assert r["Location"] == expected
    grant.refresh_from_db()
    assert grant.state == "revoked"


# --- numbers from user text: "²".isdigit() is true and int("²") fails; int() refuses 4300+ digits ----------


@pytest.mark.parametrize("value", ["²", "٣", "9" * 5000])
def test_unicode_and_huge_numbers_in_forms_and_queries_are_no_500(client, people, teams, value):
    from catalog.numbers import small_int
    from tests.agent_helpers import demo_tool

    assert small_int(value) is None and small_int("42") == 42 and small_int(42) == 42
    demo_tool(people, teams)
    client.force_login(people["alice"])
    page = client.post(
        "/agents/", {"prompt": "x", "repository": "none", "count-demo-agent": value, "time_limit_s": value}
    )
    assert page.status_code == 400  # a form error (no agent, no repository), not a 500
    client.force_login(people["bob"])
    grant = client.post("/teams/payments/grants/", {"tool": "demo-agent", "seats": value})
    assert grant.status_code < 500
