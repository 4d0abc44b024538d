"""The permission matrix: every API route x every role x every method has a written-down outcome.

Routes are discovered from the URL configuration (django's resolver), so a new route without a row in
MATRIX fails `test_route_has_a_row`. The world is built once per module (`matrix_world`, inside a
transaction rolled back at the end); every route's test runs in a savepoint of it and every request in a
savepoint of that, both rolled back, and `world` asserts each test starts from the world exactly as built
(database and repository folders). Every denial (any non-2xx answer) asserts that nothing in the
database changed (full contents of every catalog, guardian, auth and token table).

Adding your routes: add a row to MATRIX keyed by the route as printed by the failing test
(`tools/{slug}/approve/`), with `params` to fill the URL (strings, or callables taking the world) and
one `expect(...)` per method the route answers; methods you leave out must answer 405 (401 for
anonymous). If your rows need objects, append a builder to WORLD_BUILDERS: `fn(world) -> None` that
adds attributes to the world (a SimpleNamespace with `people`, `teams`, `tools`, ...).
"""

from __future__ import annotations

import functools
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection, transaction
from django.test import override_settings
from django.urls import URLResolver, get_resolver

from catalog.conf import goldpath_home
from catalog.services import access
from catalog.services.tools import tool_ban
from tests.conftest import make_people, make_teams
from tests.factories import ToolFactory

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "developer", "platform_engineer", "manager", "auditor", "admin")
ROLE_USERS = {"developer": "alice", "platform_engineer": "bob", "manager": "carol", "auditor": "erin", "admin": "admin"}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
API_PREFIX = "api/v1/"


@dataclass
class Expect:
    statuses: dict[str, int]
    body: Any = None  # dict, or callable(world) -> dict


def expect(default: int = 403, *, body: Any = None, anonymous: int = 401, **by_role: int) -> Expect:
    """Expected status per role: `default` for roles not named; anonymous 401 unless said otherwise."""
    unknown = set(by_role) - set(ROLES)
    assert not unknown, f"unknown roles {unknown}"
    statuses = {role: by_role.get(role, default) for role in ROLES}
    statuses["anonymous"] = by_role.get("anonymous", anonymous)
    return Expect(statuses, body)


def read_all(status: int = 200) -> Expect:
    return expect(status)


PLATFORM = ("platform_engineer", "admin")


def only(roles: tuple[str, ...], status: int, *, body: Any = None, default: int = 403, **others: int) -> Expect:
    return expect(default, body=body, **{r: status for r in roles}, **others)


@dataclass
class Row:
    params: dict[str, Any] = field(default_factory=dict)
    methods: dict[str, Expect] = field(default_factory=dict)


def row(params: dict[str, Any] | None = None, **methods: Expect) -> Row:
    assert set(methods) <= set(METHODS), methods
    return Row(params or {}, methods)


# --- the world every case starts from -----------------------------------------------------------


def build_core_world(w: SimpleNamespace) -> None:
    p, t = w.people, w.teams
    w.tools = {
        "claude-code": ToolFactory(slug="claude-code", status="approved", risk_tier="high"),
        "aider": ToolFactory(slug="aider", status="approved"),
        "copilot": ToolFactory(slug="copilot", status="approved"),
        "cursor": ToolFactory(slug="cursor", status="in_review", proposed_by=p["alice"]),
        "gemini": ToolFactory(slug="gemini", status="proposed", proposed_by=p["alice"]),
        "old-tool": ToolFactory(slug="old-tool", status="deprecated"),
        "sketchy": ToolFactory(slug="sketchy", status="approved"),
    }
    w.grant_payments = access.grant_create(actor=p["bob"], team=t["payments"], tool=w.tools["claude-code"])
    w.grant_search = access.grant_create(actor=p["bob"], team=t["search"], tool=w.tools["aider"])
    w.grant_banned = access.grant_create(actor=p["bob"], team=t["payments"], tool=w.tools["sketchy"])
    tool_ban(tool=w.tools["sketchy"], actor=p["frank"], reason="leak")
    w.request_dave = access.access_request_create(
        actor=p["dave"], tool=w.tools["copilot"], team=t["search"], justification="search needs it"
    )
    from catalog.models import AuditEvent

    w.audit_event = AuditEvent.objects.order_by("id").first()


def build_usage_world(w: SimpleNamespace) -> None:
    from catalog.models import UsageEvent

    w.usage_event = UsageEvent.objects.order_by("id").first()


def build_agents_world(w: SimpleNamespace) -> None:

    from catalog.services.agent_groups import agent_group_create
    from tests.agent_helpers import demo_tool, make_repo, register

    demo_tool(w.people, w.teams)
    w.repo = make_repo()
    register(w.repo, w.people)
    w.agent_group = agent_group_create(
        actor=w.people["alice"], prompt="hello", repository="sample", agents=[{"tool": "demo-agent", "count": 1}]
    )
    w.agent_run = w.agent_group.runs.first()
    from catalog.models import AITool
    from catalog.services.vendor_keys import vendor_api_key_set

    w.vendor_key = vendor_api_key_set(
        team=w.teams["search"],
        tool=AITool.objects.get(slug="demo-agent"),
        actor=w.people["bob"],
        env_var="DEMO_API_KEY",
        value="sk-demo-123456789",
    )


def build_workspace_world(w: SimpleNamespace) -> None:
    from catalog.models import BuildStatus, TemplateVersion, WorkspaceBuild
    from catalog.services import workspaces as ws_services
    from tests.workspace_helpers import published_template, sample_repository

    template = published_template("sandbox")
    TemplateVersion.objects.create(template=template, number=2, files={"main.tf": "#2"}, content_hash="h2")
    sample_repository(w.people, slug="ws-repo")
    params = {"repository": "ws-repo"}

    def made(name: str, status: str):
        ws = ws_services.workspace_create(actor=w.people["alice"], name=name, template=template, parameters=params)
        if status != "pending":
            WorkspaceBuild.objects.filter(workspace=ws).update(status=BuildStatus.SUCCEEDED)
            type(ws).objects.filter(pk=ws.pk).update(status=status)
        return ws

    w.ws_running, w.ws_stopped, w.ws_pending = made("run", "running"), made("halt", "stopped"), made("wait", "pending")
    w.build_pending = w.ws_pending.builds.get()
    from catalog.models import TerminalSession

    w.terminal_session = TerminalSession.objects.create(
        workspace=w.ws_running, user=w.people["alice"], recorded=True, recording='{"version": 2}\n[0.1, "o", "hi"]\n'
    )


WORLD_BUILDERS: list[Callable[[SimpleNamespace], None]] = [
    build_core_world,
    build_usage_world,
    build_workspace_world,
    build_agents_world,
]
OPERATORS = ("developer", *("platform_engineer", "admin"))

NEW_TOOL = {
    "slug": "brand-new",
    "name": "Brand New",
    "vendor": "Acme",
    "kind": "cli",
    "risk_tier": "low",
    "max_data_classification": "internal",
}

AUDIT_CLOSED = {m: expect(405, developer=403, manager=403) for m in ("POST", "PUT", "PATCH", "DELETE")}

# --- the table ---------------------------------------------------------------------------------

MATRIX: dict[str, Row] = {
    "auth/token/": row(
        POST=expect(400, body={"username": "alice", "password": "wrong"}, anonymous=400),
        DELETE=expect(204),
    ),
    "auth/tokens/": row(GET=read_all()),
    # erin (auditor) revokes her own token; everyone else gets 404 for it
    "auth/tokens/{token_id}/": row(
        {"token_id": lambda w: _token_id_of(w.people["erin"])}, DELETE=expect(404, auditor=204)
    ),
    "backstage/entities/": row(GET=read_all()),
    "authz/check/": row(
        POST=expect(200, body={"user": "dave", "tool": "aider"}, developer=403),
    ),
    "out-of-policy/": row(GET=read_all()),
    "out-of-policy/bulk/": row(
        POST=only(
            PLATFORM,
            200,
            body=lambda w: {"action": "revoke", "items": [{"kind": "grant", "id": w.grant_banned.pk}], "reason": "ban"},
        )
    ),
    "tools/": row(GET=read_all(), POST=expect(201, body=NEW_TOOL, auditor=403)),
    "tools/{slug}/": row({"slug": "claude-code"}, GET=read_all(), PATCH=only(PLATFORM, 200, body={"description": "x"})),
    "tools/{slug}/approve/": row({"slug": "cursor"}, POST=only(PLATFORM, 200, body={"reason": "ok"})),
    "tools/{slug}/ban/": row({"slug": "claude-code"}, POST=only(PLATFORM, 200, body={"reason": "leak"})),
    "tools/{slug}/deprecate/": row({"slug": "claude-code"}, POST=only(PLATFORM, 200, body={})),
    "tools/{slug}/reinstate/": row({"slug": "sketchy"}, POST=only(("admin",), 200, body={"reason": "fixed"})),
    "tools/{slug}/reject/": row({"slug": "cursor"}, POST=only(PLATFORM, 200, body={"reason": "no"})),
    "tools/{slug}/request-review/": row(
        {"slug": "gemini"}, POST=only((*PLATFORM, "developer"), 200, body={"reason": ""})
    ),
    "tools/{slug}/retire/": row({"slug": "old-tool"}, POST=only(PLATFORM, 200, body={})),
    "tools/{slug}/versions/": row(
        {"slug": "claude-code"},
        GET=read_all(),
        POST=only(PLATFORM, 201, body={"version": "9.9.9", "launch_command": ["x", "{prompt}"]}),
    ),
    "repositories/": row(
        GET=read_all(),
        POST=only(
            PLATFORM,
            201,
            body={"slug": "new-repo", "name": "New", "url": "https://github.com/acme/new.git", "teams": ["search"]},
        ),
    ),
    "repositories/{slug}/": row(
        {"slug": "sample"},
        GET=read_all(),
        PATCH=only(PLATFORM, 200, body={"name": "Sample!"}),
        DELETE=only(PLATFORM, 409),
    ),
    "teams/": row(GET=read_all(), POST=only(("admin",), 201, body={"slug": "new-team", "name": "New"})),
    "teams/{slug}/": row(
        {"slug": "search"},
        GET=read_all(),
        PATCH=only(("admin",), 200, body={"name": "Search!"}),
        DELETE=only(("admin",), 204),
    ),
    "teams/{slug}/members/": row(
        {"slug": "payments"}, GET=read_all(), POST=only(("admin",), 201, body={"username": "erin"})
    ),
    "teams/{slug}/members/{username}/": row({"slug": "payments", "username": "alice"}, DELETE=only(("admin",), 204)),
    "users/": row(GET=read_all(), POST=only(("admin",), 201, body={"username": "newbie"})),
    "users/me/": row(GET=read_all()),
    "users/{username}/": row(
        {"username": "dave"}, GET=read_all(), PATCH=only(("admin",), 200, body={"role": "manager"})
    ),
    # roles that may not read the audit log get 403 for every method (the resource is closed to them)
    "audit-events/": row(GET=only(("auditor", *PLATFORM), 200), **AUDIT_CLOSED),
    "audit-events/{pk}/": row(
        {"pk": lambda w: w.audit_event.pk}, GET=only(("auditor", *PLATFORM), 200), **AUDIT_CLOSED
    ),
    "access-requests/": row(
        GET=read_all(),
        POST=expect(201, body={"tool": "copilot", "team": "payments", "justification": "x"}, auditor=403),
    ),
    "access-requests/{pk}/": row({"pk": lambda w: w.request_dave.pk}, GET=expect(200, developer=404)),
    "access-requests/{pk}/approve/": row(
        {"pk": lambda w: w.request_dave.pk}, POST=only(PLATFORM, 200, body={}, developer=404)
    ),
    "access-requests/{pk}/reject/": row(
        {"pk": lambda w: w.request_dave.pk}, POST=only(PLATFORM, 200, body={"reason": "no"}, developer=404)
    ),
    "grants/": row(GET=read_all(), POST=only(PLATFORM, 201, body={"team": "payments", "tool": "copilot"})),
    "grants/{pk}/": row(
        {"pk": lambda w: w.grant_search.pk},
        GET=expect(200, developer=404),
        PATCH=only(PLATFORM, 200, body={"budget_usd": "100.00"}, developer=404),
        DELETE=only(PLATFORM, 204, developer=404),
    ),
    # adoption reports (issue 6): developers 403; raw usage events for auditors and platform; imports for platform
    "reports/adoption/": row(GET=expect(200, developer=403)),
    "usage-events/": row(GET=only(("auditor", *PLATFORM), 200), **AUDIT_CLOSED),
    "usage-events/{pk}/": row(
        {"pk": lambda w: w.usage_event.pk}, GET=only(("auditor", *PLATFORM), 200), **AUDIT_CLOSED
    ),
    "usage-events/import/": row(
        POST=only(PLATFORM, 201, body=[{"date": "2026-01-05", "total_active_users": 3, "total_engaged_users": 2}]),
        **{m: expect(405, developer=403, manager=403) for m in ("GET", "PUT", "PATCH", "DELETE")},
    ),
    # templates and workspaces (issue 4): alice (developer) owns the workspaces; carol manages her team
    "templates/": row(GET=read_all()),
    "templates/{slug}/": row({"slug": "sandbox"}, GET=read_all()),
    "templates/{slug}/versions/": row({"slug": "sandbox"}, GET=read_all(), POST=only(PLATFORM, 400, body={})),
    "templates/{slug}/versions/{number}/": row({"slug": "sandbox", "number": 1}, GET=read_all()),
    "templates/{slug}/versions/{number}/publish/": row(
        {"slug": "sandbox", "number": 2}, POST=only(PLATFORM, 202, body={})
    ),
    "templates/{slug}/versions/{number}/validate/": row(
        {"slug": "sandbox", "number": 2}, POST=only(PLATFORM, 202, body={})
    ),
    "templates/{slug}/versions/{number}/activate/": row(
        {"slug": "sandbox", "number": 1}, POST=only(PLATFORM, 200, body={})
    ),
    "workspaces/": row(
        GET=read_all(),
        # admin belongs to no team: a workspace needs one (400)
        POST=expect(
            403,
            body={"name": "new", "template": "sandbox", "parameters": {"repository": "ws-repo"}},
            developer=201,
            platform_engineer=201,
            admin=400,
        ),
    ),
    "workspaces/{pk}/": row({"pk": lambda w: w.ws_running.pk}, GET=read_all(), DELETE=only(OPERATORS, 202)),
    "workspaces/{pk}/start/": row({"pk": lambda w: w.ws_stopped.pk}, POST=only(OPERATORS, 202, body={})),
    "workspaces/{pk}/stop/": row({"pk": lambda w: w.ws_running.pk}, POST=only(OPERATORS, 202, body={})),
    "workspaces/{pk}/update/": row({"pk": lambda w: w.ws_running.pk}, POST=only(OPERATORS, 202, body={})),
    "workspaces/{pk}/builds/": row({"pk": lambda w: w.ws_running.pk}, GET=read_all()),
    # WebSockets (the ASGI routes; tests/test_terminals.py): a plain request answers 426 to anyone signed in
    "workspaces/{pk}/terminal/": row({"pk": lambda w: w.ws_running.pk}, GET=read_all(426)),
    "workspaces/{pk}/agent/": row({"pk": lambda w: w.ws_running.pk}, GET=read_all(426)),
    # only the workspace session's own key (never a user's credentials) gets a new agent token
    "workspaces/{pk}/agent/token/": row(
        {"pk": lambda w: w.ws_running.pk},
        POST=expect(403, anonymous=403, body={}),
        **{m: expect(405, anonymous=405) for m in ("GET", "PUT", "PATCH", "DELETE")},
    ),
    # a terminal session is an audit fact: its workspace's owner and the audit readers see it
    "terminal-sessions/": row(GET=read_all()),
    "terminal-sessions/{pk}/": row({"pk": lambda w: w.terminal_session.pk}, GET=expect(200, manager=404)),
    "terminal-sessions/{pk}/recording/": row({"pk": lambda w: w.terminal_session.pk}, GET=expect(200, manager=404)),
    "builds/{pk}/": row({"pk": lambda w: w.build_pending.pk}, GET=read_all()),
    "builds/{pk}/logs/": row({"pk": lambda w: w.build_pending.pk}, GET=read_all()),
    "builds/{pk}/cancel/": row({"pk": lambda w: w.build_pending.pk}, POST=only(OPERATORS, 202, body={})),
    # agent runs (issue 5): the requester's team (and managers of it), auditors, platform and admins read;
    # launching needs a team holding a grant (only alice's payments here); agent endpoints take only the
    # run's own agent token (humans 403)
    "agent-groups/": row(
        GET=read_all(),
        POST=expect(
            403,
            developer=201,
            body=lambda w: {"prompt": "p", "repository": "sample", "agents": [{"tool": "demo-agent", "count": 1}]},
        ),
    ),
    "agent-groups/{pk}/": row({"pk": lambda w: w.agent_group.pk}, GET=read_all()),
    "agent-groups/{pk}/cancel/": row(
        {"pk": lambda w: w.agent_group.pk}, POST=expect(403, developer=200, platform_engineer=200, admin=200)
    ),
    "agent-groups/{pk}/accept/": row(
        {"pk": lambda w: w.agent_group.pk},
        POST=expect(403, developer=409, platform_engineer=409, admin=409, body=lambda w: {"run": w.agent_run.pk}),
    ),
    # the group was launched from a repository, not a workspace: its requester gets 409, others 403
    "agent-groups/{pk}/apply/": row(
        {"pk": lambda w: w.agent_group.pk}, POST=expect(403, developer=409, body=lambda w: {"run": w.agent_run.pk})
    ),
    "agent-runs/{pk}/": row({"pk": lambda w: w.agent_run.pk}, GET=read_all()),
    "agent-runs/{pk}/logs/": row({"pk": lambda w: w.agent_run.pk}, GET=read_all()),
    "agent-runs/{pk}/progress/": row({"pk": lambda w: w.agent_run.pk}, POST=expect(403, body={"progress": "x"})),
    "agent-runs/{pk}/result/": row({"pk": lambda w: w.agent_run.pk}, POST=expect(403, body={"result": {}})),
    "provenance/": row(GET=expect(400)),
    "vendor-keys/": row(
        GET=only(PLATFORM, 200),
        POST=only(
            PLATFORM,
            201,
            body={"team": "payments", "tool": "demo-agent", "env_var": "DEMO_API_KEY", "value": "sk-987654321"},
        ),
    ),
    "vendor-keys/{pk}/": row({"pk": lambda w: w.vendor_key.pk}, DELETE=only(PLATFORM, 204)),
    "provenance/key/": row(
        GET=expect(200, anonymous=200), **{m: expect(405, anonymous=405) for m in ("POST", "PUT", "PATCH", "DELETE")}
    ),
}


# a tool version's egress hosts (issue 7, item 7): sandbox policy, platform engineers and admins only
def build_tool_version_world(w: SimpleNamespace) -> None:
    from tests.factories import ToolVersionFactory

    w.claude_version = ToolVersionFactory(tool=w.tools["claude-code"], version="7.0-matrix")
    # a version proposed by frank: bob and admin may approve or reject it, nobody else
    ToolVersionFactory(
        tool=w.tools["aider"], version="8.0-proposed", review_state="proposed", created_by=w.people["frank"]
    )


WORLD_BUILDERS.append(build_tool_version_world)
MATRIX["tools/{slug}/versions/{version}/"] = row(
    {"slug": "claude-code", "version": "7.0-matrix"},
    GET=read_all(),
    PATCH=only(PLATFORM, 200, body={"egress_hosts": ["api.anthropic.com", "*.githubusercontent.com"]}),
)
MATRIX["tools/{slug}/versions/{version}/approve/"] = row(
    {"slug": "aider", "version": "8.0-proposed"}, POST=only(PLATFORM, 200, body={"reason": "reviewed"})
)
MATRIX["tools/{slug}/versions/{version}/reject/"] = row(
    {"slug": "aider", "version": "8.0-proposed"}, POST=only(PLATFORM, 200, body={"reason": "no"})
)

# --- route discovery ---------------------------------------------------------------------------


def _normalise(route: str) -> str:
    route = route.replace("^", "").replace("$", "")
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route)
    route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
    return route


def api_routes() -> list[str]:
    found: list[str] = []

    def walk(patterns, prefix: str) -> None:
        for p in patterns:
            text = str(p.pattern)
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + text)
            elif (prefix + text).startswith(API_PREFIX) and "(?P<format>" not in text:
                route = _normalise((prefix + text)[len(API_PREFIX) :])
                if route not in found:
                    found.append(route)

    walk(get_resolver().url_patterns, "")
    return found


ROUTES = api_routes()

SNAPSHOT_APPS = ("catalog", "guardian", "auth", "authtoken", "contenttypes")


def _token_id_of(user) -> str:
    from rest_framework.authtoken.models import Token

    from catalog.api_tokens import token_id

    return token_id(Token.objects.get(user=user))


@functools.cache
def _snapshot_queries() -> dict[str, tuple[str, tuple]]:
    """Per model of SNAPSHOT_APPS, the SQL that reads all its rows in key order (compiled once by the ORM)."""
    out = {}
    for label in SNAPSHOT_APPS:
        for model in apps.get_app_config(label).get_models():
            rows = model.objects.order_by("pk")
            if model._meta.label == "catalog.AuditEvent":
                # a refused sign-in is meant to leave its trace (auth.login_failed): not a change of state
                rows = rows.exclude(verb__startswith="auth.")
            out[model._meta.label] = rows.values_list().query.sql_with_params()
    return out


def snapshot() -> dict[str, list]:
    """Every row of every table of SNAPSHOT_APPS, as the database returns it (raw SQL: about 15x faster than
    the ORM's values_list, which matters at some 2,000 snapshots per run)."""
    out = {}
    with connection.cursor() as cursor:
        for label, (sql, params) in _snapshot_queries().items():
            cursor.execute(sql, params)
            out[label] = cursor.fetchall()
    return out


class _Rollback(Exception):
    pass


def _repository_folders() -> list[Path]:
    """The local repositories the world registered (real git folders under GOLDPATH_HOME/repositories)."""
    from catalog.models import Repository

    root = goldpath_home() / "repositories"
    return [Path(url) for url in Repository.objects.values_list("url", flat=True) if Path(url).is_relative_to(root)]


def _files_state(folders: list[Path]) -> dict[str, str]:
    """What a case could change on disk in a repository: its refs and its work tree."""
    from tests.agent_helpers import git

    return {str(f): git(f, "for-each-ref") + "\n" + git(f, "status", "--porcelain") for f in folders}


@pytest.fixture(scope="module")
def matrix_world(django_db_setup, django_db_blocker) -> Iterator[SimpleNamespace]:
    """The world, built once per module inside an outer transaction that is rolled back after the last case.

    Each case's `db` fixture (a django TestCase) nests its own atomic block inside it - a savepoint rolled
    back after the case - so every case starts from exactly this state; `world` checks that it does. This
    works the same on SQLite and PostgreSQL (both roll back to savepoints; sequences may move on PostgreSQL,
    which is why rows are named through the world, never by number)."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            # what the per-test autouse fixtures set (they do not run for a module-scoped fixture)
            with override_settings(
                EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
                GOLDPATH={**settings.GOLDPATH, "WEBHOOK_URL": ""},
            ):
                teams = make_teams()
                w = SimpleNamespace(people=make_people(teams), teams=teams)
                for builder in WORLD_BUILDERS:
                    builder(w)
            from rest_framework.authtoken.models import Token

            for user in w.people.values():
                Token.objects.get_or_create(user=user)  # as api(user) would on first use, now part of the world
            w.folders = _repository_folders()
            w.state, w.files = snapshot(), _files_state(w.folders)
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(*sys.exc_info())
            raise
    try:
        yield w
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
        for folder in w.folders:  # nothing refers to them once the world is rolled back
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def world(matrix_world, db, api) -> SimpleNamespace:
    """The module's world, checked to be exactly as built (database and repository folders), with fresh clients."""
    changed = [label for label, rows in snapshot().items() if rows != matrix_world.state[label]]
    assert not changed, f"a previous case left changes behind in {changed}: cases must start from the same world"
    assert _files_state(matrix_world.folders) == matrix_world.files, "a previous case changed a repository's files"
    w = SimpleNamespace(**vars(matrix_world))
    w.clients = {role: api(w.people[ROLE_USERS[role]] if role != "anonymous" else None) for role in ROLES}
    return w


def test_every_row_names_a_real_route():
    stale = sorted(set(MATRIX) - set(ROUTES))
    assert not stale, f"rows for routes that no longer exist: {stale}"


@pytest.mark.parametrize("route", ROUTES)
def test_route_has_a_row(route, world):
    row_ = MATRIX.get(route)
    if row_ is None:
        pytest.fail(f"API route {route!r} has no row in tests/test_permission_matrix.py MATRIX: add one.")
    params = {k: str(v(world) if callable(v) else v) for k, v in row_.params.items()}
    path = "/" + API_PREFIX + route.format(**params)
    baseline = world.state  # `world` checked the database is in it
    failures = []
    for method in METHODS:
        exp = row_.methods.get(method) or expect(405)
        body = exp.body(world) if callable(exp.body) else exp.body
        for role in ROLES:
            want = exp.statuses[role]
            client = world.clients[role]
            changed = None
            try:
                with transaction.atomic():
                    kwargs = {"format": "json"} if method != "GET" else {}
                    args = (body,) if (body is not None and method != "GET") else ()
                    response = getattr(client, method.lower())(path, *args, **kwargs)
                    got = response.status_code
                    if not 200 <= got < 300:
                        after = snapshot()
                        changed = [label for label in baseline if baseline[label] != after[label]]
                    raise _Rollback
            except _Rollback:
                pass
            except Exception as exc:  # noqa: BLE001 - a crash is a failure of this case, reported with the rest
                got, changed = f"exception {exc!r}", None
            if got != want:
                failures.append(f"{method} {path} as {role}: expected {want}, got {got}")
            if changed:
                failures.append(f"{method} {path} as {role}: denied ({got}) but changed {changed}")
    assert not failures, "\n".join(failures)
