"""Shared fixtures: the demo roles, API clients, and a real Celery worker process.

The database is whatever DATABASE_URL names (PostgreSQL in CI) or the embedded SQLite default;
the broker is CELERY_BROKER_URL (Redis in CI) or the embedded file-system broker.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from catalog.conf import goldpath_home
from catalog.models import Team
from tests.factories import TeamFactory, UserFactory

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config) -> None:
    # Fast hashing for the many users tests create; production keeps Django's default.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # a test's database transaction is invisible to another connection: model calls are recorded in the request
    # thread (in this process, and in the web servers and workers tests start, which inherit the environment)
    os.environ.setdefault("GOLDPATH_GATEWAY_RECORD_IN_BACKGROUND", "0")
    settings.GOLDPATH = {**settings.GOLDPATH, "GATEWAY_RECORD_IN_BACKGROUND": False}


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """API throttle counters live in the cache: each test starts with none."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _mail_and_notifications(settings, tmp_path):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.GOLDPATH = {**settings.GOLDPATH, "WEBHOOK_URL": ""}


def make_teams() -> dict[str, Team]:
    """The demo organisation's teams (the `teams` fixture; module-scoped worlds call it directly)."""
    return {slug: TeamFactory(slug=slug, name=slug.title()) for slug in ("platform", "payments", "search")}


def make_people(teams: dict[str, Team]) -> dict:
    """One user per role, wired to teams like the demo organisation (the `people` fixture)."""
    alice = UserFactory(username="alice", role="developer")
    dave = UserFactory(username="dave", role="developer")
    bob = UserFactory(username="bob", role="platform_engineer")
    frank = UserFactory(username="frank", role="platform_engineer")
    carol = UserFactory(username="carol", role="manager")
    erin = UserFactory(username="erin", role="auditor")
    admin = UserFactory(username="admin", role="admin")
    for user, team in ((alice, "payments"), (dave, "search"), (bob, "platform"), (frank, "platform")):
        user.groups.add(teams[team].group)  # the team's group is its membership
    teams["payments"].managers.add(carol)
    teams["search"].managers.add(carol)
    return {u.username: u for u in (alice, dave, bob, frank, carol, erin, admin)}


@pytest.fixture
def teams(db) -> dict[str, Team]:
    return make_teams()


@pytest.fixture
def people(teams):
    """One user per role, wired to teams like the demo organisation."""
    return make_people(teams)


@pytest.fixture
def api():
    """An API client factory: api(user) authenticates with a real token."""

    def make(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            from rest_framework.authtoken.models import Token

            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


def _worker_env() -> dict[str, str]:
    """Point a worker process at the test database the tests are using."""
    from django.db import connection

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", "GOLDPATH_HOME": str(goldpath_home())}
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        host = db.get("HOST") or "127.0.0.1"
        port = db.get("PORT") or 5432
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        env["DATABASE_URL"] = f"postgres://{db.get('USER') or 'postgres'}{password}@{host}:{port}/{db['NAME']}"
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    return env


# --- every test that starts a real worker or server process is marked `integration` -----------------

#: fixtures that start a real Celery worker or web server (the host project's `host` is found by its code)
WORKER_FIXTURES = frozenset({"celery_worker", "running_terminal_workspace"})
_STARTS_A_PROCESS = re.compile(r"\b(?:WorkerProcess|WebServer)\(|\"-m\",\s*\"(?:celery|uvicorn)\"")


@functools.cache
def _starts_a_process(func) -> str | None:
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return None
    found = _STARTS_A_PROCESS.search(source)
    return found and f"{func.__qualname__} starts {found.group(0).rstrip('(')}"


def starts_a_worker(item: pytest.Item) -> str | None:
    """Why `item` starts a real worker or server, or None: it uses a fixture of WORKER_FIXTURES, or its own
    code or that of any fixture it uses starts WorkerProcess, WebServer or `python -m celery/uvicorn`."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    used = sorted(WORKER_FIXTURES & set(info.names_closure))
    if used:
        return f"uses the {used[0]} fixture"
    funcs = [getattr(item, "function", None)] + [d.func for defs in info.name2fixturedefs.values() for d in defs]
    return next((why for func in funcs if func is not None and (why := _starts_a_process(func))), None)


def pytest_collection_modifyitems(config, items) -> None:
    """Fail collection when a test that starts a worker is not marked integration (so `-m "not integration"`
    really leaves every worker out, and the suite's slow part is named)."""
    unmarked = [
        f"  {item.nodeid}: {why}"
        for item in items
        if item.get_closest_marker("integration") is None and (why := starts_a_worker(item))
    ]
    if unmarked:
        raise pytest.UsageError(
            "tests that start a real worker must be marked integration (pytestmark = pytest.mark.integration):\n"
            + "\n".join(unmarked)
        )


_running: dict[str, pytest.Item] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _running["item"] = item
    try:
        return (yield)
    finally:
        _running.pop("item", None)


def _require_integration(what: str) -> None:
    """The same rule at run time, for a worker started by a helper the collection check cannot see."""
    item = _running.get("item")
    if item is not None and item.get_closest_marker("integration") is None:
        pytest.fail(f"{item.nodeid} starts {what} but is not marked integration", pytrace=False)


class WorkerProcess:
    """A real `celery worker` process, started and stopped by the test that needs it."""

    def __init__(self, queues: str = "default,provisioning,agents,reports", concurrency: int = 2):
        self.queues = queues
        self.concurrency = concurrency
        self.proc: subprocess.Popen | None = None
        self.log_path = goldpath_home() / f"test-worker-{os.getpid()}-{time.monotonic_ns()}.log"

    def start(self, timeout: float = 30.0) -> WorkerProcess:
        _require_integration("a celery worker")
        self.log = open(self.log_path, "w+")  # noqa: SIM115
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "-Q",
            self.queues,
            "--concurrency",
            str(self.concurrency),
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
            "--hostname",
            f"test-{os.getpid()}-{time.monotonic_ns()}@%h",
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=_worker_env(), stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited early:\n{self.output()}")
            if " ready." in self.output():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"celery worker not ready in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        if hasattr(self, "log"):
            self.log.close()


def purge_queues() -> None:
    from portal.celery import app

    with app.connection_for_write() as conn:
        for queue in ("default", "provisioning", "agents", "reports"):
            try:
                conn.default_channel.queue_purge(queue)
            except Exception:  # noqa: BLE001 - a queue that does not exist yet is empty
                pass


@pytest.fixture
def celery_worker(transactional_db) -> Iterator[WorkerProcess]:
    """A real worker process on the configured broker, reading the test database."""
    purge_queues()
    worker = WorkerProcess().start()
    try:
        yield worker
    finally:
        worker.stop()


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{package} is not installed ({name} not on PATH)")
    return path


@pytest.fixture
def running_terminal_workspace(transactional_db, people, teams, monkeypatch):
    """A real ASGI server and worker, and alice's running local-sandbox workspace whose agent has dialled in:
    yields (server URL, workspace, username, password)."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    from tests.factories import PASSWORD
    from tests.terminal_helpers import WebServer, agent_ready, kill_session, start_workspace

    require_binary("bwrap", "bubblewrap")  # the workspace's session runs in it
    # the web server hashes like production (this process uses a fast test hasher): alice signs in there
    hasher = PBKDF2PasswordHasher()
    people["alice"].password = hasher.encode(PASSWORD, hasher.salt(), iterations=1000)
    people["alice"].save(update_fields=["password"])
    server = WebServer().start()
    monkeypatch.setenv("GOLDPATH_AGENT_URL", server.url)
    purge_queues()
    worker = WorkerProcess().start()
    ws = None
    try:
        ws = start_workspace(people, record_sessions=True)
        agent_ready(ws.pk)
        yield server.url, ws, "alice", PASSWORD
    finally:
        if ws is not None:
            kill_session(ws)
        worker.stop()
        server.stop()
