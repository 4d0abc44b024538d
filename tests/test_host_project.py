"""Goldpath plugged into a second host project (tests/hostproject: a startproject site with its own settings,
login, base template and open REST_FRAMEWORK defaults), mounted under /goldpath/, exactly as README's plug-in
section says. Migrated, seeded, served by waitress and worked by its own Celery worker, all separate processes;
driven over HTTP as each role.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from websockets.sync.client import connect

from tests.terminal_helpers import Terminal

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "tests" / "hostproject"
PASSWORD = "acme-demo-pw-1"
ROLES = ("alice", "bob", "carol", "erin", "admin")  # developer, platform engineer, manager, auditor, admin
# Goldpath pages without URL arguments, and a few with the seed's objects
PAGES = [
    "",
    "tools/new/",
    "reviews/",
    "teams/",
    "teams/payments/",
    "tools/claude-code/",
    "audit/",
    "audit/export.csv",
    "access-requests/",
    "authz/simulator/",
    "out-of-policy/",
    "reports/adoption/",
    "golden-paths/",
    "golden-paths/local-sandbox/",
    "workspaces/",
    "agents/",
    "provenance/",
    "vendor-keys/",
    "repositories/",
]
API_LISTS = [
    "tools",
    "teams",
    "users",
    "audit-events",
    "access-requests",
    "grants",
    "agent-groups",
    "vendor-keys",
    "usage-events",
    "templates",
    "workspaces",
    "repositories",
    "auth/tokens",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Host:
    origin: str
    env: dict[str, str]
    log: Path

    def url(self, path: str) -> str:
        return f"{self.origin}{path}"

    def manage(self, *args: str, check: bool = True, extra_env: dict[str, str] | None = None):
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=HOST,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=300,
            check=check,
        )

    def session(self, username: str) -> requests.Session:
        """Signed in through the host's own login page (not Goldpath's)."""
        s = requests.Session()
        page = s.get(self.url("/accounts/login/?next=/goldpath/"), timeout=30)
        assert page.status_code == 200 and "Acme sign-in" in page.text
        answer = s.post(
            self.url("/accounts/login/"),
            data={
                "username": username,
                "password": PASSWORD,
                "next": "/goldpath/",
                "csrfmiddlewaretoken": s.cookies["csrftoken"],
            },
            headers={"Referer": self.url("/accounts/login/")},
            timeout=30,
        )
        assert answer.status_code == 200 and answer.url == self.url("/goldpath/"), answer.text[:500]
        return s

    def token(self, username: str) -> str:
        answer = requests.post(
            self.url("/goldpath/api/v1/auth/token/"), json={"username": username, "password": PASSWORD}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["token"]

    def api(self, username: str) -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = f"Token {self.token(username)}"
        return s


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"host process exited:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} never answered:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Host:
    base = tmp_path_factory.mktemp("acme")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOLDPATH_", "DATABASE_URL", "CELERY_", "DJANGO_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "hostsite.settings",
            "PYTHONPATH": f"{HOST}{os.pathsep}{ROOT}",
            "HOST_DB": str(base / "acme.sqlite3"),
            "HOST_GOLDPATH_HOME": str(base / "goldpath"),
            "HOST_ORIGIN": f"http://127.0.0.1:{port}",
            "GOLDPATH_DEMO_PASSWORD": PASSWORD,  # seed_demo reads it in any host
        }
    )
    if os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"):
        env["HOST_BROKER_URL"] = "redis://127.0.0.1:6379/13"
        subprocess.run(["redis-cli", "-n", "13", "flushdb"], check=False, capture_output=True)
    h = Host(origin=f"http://127.0.0.1:{port}", env=env, log=base / "host.log")
    checked = h.manage("check")
    assert "System check identified no issues" in checked.stdout, checked.stdout + checked.stderr
    h.manage("migrate", "-v0")
    seeded = h.manage("seed_demo")
    assert "Demo organisation ready" in seeded.stdout, seeded.stdout + seeded.stderr
    log = open(h.log, "w")  # noqa: SIM115
    web = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "hostsite.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
        + ["--ws", "websockets-sansio", "--log-level", "warning"],
        cwd=HOST,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "hostsite", "worker", "-Q", "default,provisioning,agents,reports"]
        + ["--concurrency", "2", "--without-mingle", "--without-gossip", "-l", "INFO"],
        cwd=HOST,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait(h.url("/goldpath/healthz"), web, h.log)
        deadline = time.monotonic() + 60  # the tests' own deadlines count from a ready worker, never its start-up
        while " ready." not in h.log.read_text(errors="replace"):
            assert worker.poll() is None and time.monotonic() < deadline, h.log.read_text()[-3000:]
            time.sleep(0.3)
        yield h
    finally:
        for proc in (web, worker):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        # the local sandbox's session processes (one per running workspace) must not outlive the test
        for pid_file in (base / "goldpath" / "workspaces").glob("*/.goldpath/session.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)


def test_pages_as_each_role_use_the_host_layout_and_prefixed_links(host):
    foreign = re.compile(r'(?:href|action|hx-get|hx-post|src)="(/(?!goldpath/|static/|accounts/)[^"]*)"')
    for username in ROLES:
        s = host.session(username)
        seen = {}
        for page in PAGES:
            answer = s.get(host.url(f"/goldpath/{page}"), timeout=30)
            seen[page] = answer.status_code
            assert answer.status_code in (200, 403), (username, page, answer.status_code, answer.text[:800])
            if answer.status_code == 200 and "html" in answer.headers["Content-Type"]:
                assert 'id="acme-nav"' in answer.text, (username, page)  # GOLDPATH["BASE_TEMPLATE"]
                assert "goldpath/goldpath.css" in answer.text  # Goldpath's own assets under the host's layout
                assert not foreign.findall(answer.text), (username, page, foreign.findall(answer.text))
        # everyone can browse the catalog, the golden paths and their workspaces
        assert all(seen[p] == 200 for p in ("", "golden-paths/", "workspaces/", "tools/claude-code/")), (username, seen)
        if username == "alice":
            assert seen["reviews/"] == 403 and seen["vendor-keys/"] == 403
        if username == "bob":
            assert seen["reviews/"] == 200 and seen["tools/new/"] == 200
    anonymous = requests.get(host.url("/goldpath/workspaces/"), timeout=30, allow_redirects=False)
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/accounts/login/")


def test_api_enforces_its_own_policy_under_an_open_host(host):
    # the host's own API is open under its defaults; Goldpath's is not
    assert requests.get(host.url("/api/host/ping/"), timeout=30).json() == {"host": "acme"}
    for name in API_LISTS:
        anonymous = requests.get(host.url(f"/goldpath/api/v1/{name}/"), timeout=30)
        assert anonymous.status_code == 401, (name, anonymous.status_code)
    for username in ROLES:
        s = host.api(username)
        for name in API_LISTS:
            answer = s.get(host.url(f"/goldpath/api/v1/{name}/"), timeout=30)
            assert answer.status_code in (200, 403), (username, name, answer.status_code, answer.text[:500])
            if answer.status_code == 200:
                assert "results" in answer.json(), (username, name)  # Goldpath's pagination, not the host's None
    tools = host.api("alice").get(host.url("/goldpath/api/v1/tools/?page_size=2"), timeout=30).json()
    assert len(tools["results"]) == 2 and tools["next"].startswith(host.url("/goldpath/api/v1/tools/"))


def test_domain_errors_are_answers_not_500s(host):
    bob = host.api("bob")
    again = bob.post(host.url("/goldpath/api/v1/tools/claude-code/approve/"), json={"reason": "twice"}, timeout=30)
    assert 400 <= again.status_code < 500 and "detail" in again.json(), again.text[:500]
    unknown = bob.post(host.url("/goldpath/api/v1/workspaces/"), json={"template": "nope", "name": "x"}, timeout=30)
    assert unknown.status_code == 400, unknown.text[:500]


def test_schema_docs_and_health_are_public_and_only_goldpath(host):
    schema = requests.get(host.url("/goldpath/api/schema/?format=json"), timeout=60)
    assert schema.status_code == 200, schema.text[:500]
    paths = list(schema.json()["paths"])
    assert paths and all(p.startswith("/goldpath/api/v1/") for p in paths), paths[:5]
    docs = requests.get(host.url("/goldpath/api/docs/"), timeout=30)
    assert docs.status_code == 200 and "/goldpath/api/schema/" in docs.text
    health = requests.get(host.url("/goldpath/healthz"), timeout=30).json()
    assert health["status"] == "ok" and health["database"]["ok"] and health["broker"]["ok"]


def test_tool_approval_and_links_carry_the_prefix(host):
    bob, frank = host.api("bob"), host.api("frank")
    cursor = bob.get(host.url("/goldpath/api/v1/tools/cursor/"), timeout=30).json()
    assert cursor["status"] == "in_review"
    decided = None
    for approver in (bob, frank):  # high-risk tools need two approvers
        decided = approver.post(
            host.url("/goldpath/api/v1/tools/cursor/approve/"), json={"reason": "reviewed for Acme"}, timeout=30
        )
        assert decided.status_code == 200, decided.text[:500]
        if decided.json()["status"] == "approved":
            break
    assert decided.json()["status"] == "approved"
    entities = bob.get(host.url("/goldpath/api/v1/backstage/entities/"), timeout=30).json()
    links = [str(e) for e in (entities if isinstance(entities, list) else entities.get("items", entities))]
    assert any("http://127.0.0.1" in link and "/goldpath/tools/cursor/" in link for link in links)
    audit = host.api("erin").get(host.url("/goldpath/api/v1/audit-events/?target=cursor"), timeout=30)
    assert audit.status_code == 200


def test_workspace_build_through_the_hosts_worker(host):
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (the workspace's session runs in it)")
    alice = host.api("alice")
    repos = alice.get(host.url("/goldpath/api/v1/repositories/"), timeout=30).json()["results"]
    created = alice.post(
        host.url("/goldpath/api/v1/workspaces/"),
        json={"template": "local-sandbox", "name": "acme-ws", "parameters": {"repository": repos[0]["slug"]}},
        timeout=30,
    )
    assert created.status_code in (201, 202), created.text[:800]
    ws = created.json()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ws = alice.get(host.url(f"/goldpath/api/v1/workspaces/{ws['id']}/"), timeout=30).json()
        if ws["status"] in ("running", "failed"):
            break
        time.sleep(1)
    assert ws["status"] == "running", (ws, host.log.read_text()[-3000:])
    page = host.session("alice").get(host.url(f"/goldpath/workspaces/{ws['id']}/"), timeout=30)
    assert page.status_code == 200 and "acme-ws" in page.text
    # the workspace agent dialled in to the host (under its prefix) and the terminal works there
    while time.monotonic() < deadline and ws["agent_state"] != "ready":
        time.sleep(0.5)
        ws = alice.get(host.url(f"/goldpath/api/v1/workspaces/{ws['id']}/"), timeout=30).json()
    assert ws["agent_state"] == "ready", host.log.read_text()[-3000:]
    url = host.origin.replace("http://", "ws://") + f"/goldpath/api/v1/workspaces/{ws['id']}/terminal/"
    with connect(url, additional_headers={"Authorization": f"Token {host.token('alice')}"}) as sock:
        term = Terminal(sock)
        assert term.run("echo $((6*7))") == "42"


@pytest.mark.parametrize(
    ("broken", "names"),
    [
        ("middleware", ["goldpath.E002", "axes.middleware.AxesMiddleware"]),
        ("apps", ["goldpath.E001", "drf_spectacular_sidecar"]),
        ("setting", ["goldpath.W001", "REVIEW_PERIOD"]),
        ("backends", ["goldpath.E008", "lockout must come first"]),
    ],
)
def test_a_host_missing_part_of_the_contract_is_told_which(host, broken, names):
    answer = host.manage("check", check=False, extra_env={"HOST_BREAK": broken})
    output = answer.stdout + answer.stderr
    assert all(name in output for name in names), output[-2000:]
    assert "README" in output or "Known settings" in output or "this order" in output
