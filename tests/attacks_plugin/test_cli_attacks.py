"""The installed `goldpath` CLI against hostile surroundings: a portal address that redirects elsewhere (or a page
whose `next` link names another host) must never receive the token; the token file stays private even under a
careless umask; `--json` never prints the token; `templates push` never packs what a symlink points at; and
`provenance verify` is not fooled by a statement about another commit that shares the prefix asked about."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from catalog.models import ProvenanceRecord, TemplateVersion, ToolVersion
from catalog.services import agent_groups as agent_services
from catalog.services import templates as template_services
from tests.agent_helpers import change_diff, demo_tool, finish_run, git, make_repo, register, worker_accepts
from tests.factories import PASSWORD
from tests.tf.templates import ECHO

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "tok-0123456789abcdef-secret"


class Recorder(ThreadingHTTPServer):
    """An HTTP server that answers with `answer(handler)` and keeps every request's method, path and headers."""

    daemon_threads = True

    def __init__(self, answer):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = answer
        self.seen: list[tuple[str, str, dict]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _Handler(BaseHTTPRequestHandler):
    def _any(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.seen.append((self.command, self.path, dict(self.headers)))
        status, headers, body = self.server.answer(self)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _any

    def log_message(self, *args):
        pass


@pytest.fixture
def servers():
    started = []

    def start(answer) -> Recorder:
        server = Recorder(answer)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def store(goldpath, url: str, token: str = SECRET) -> None:
    goldpath.config_dir.mkdir(parents=True, exist_ok=True)
    (goldpath.config_dir / "config.json").write_text(json.dumps({"url": url, "token": token, "username": "alice"}))


def sent_token(server: Recorder) -> bool:
    return any(SECRET in json.dumps(headers) for _, _, headers in server.seen)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirecting_portal_never_forwards_the_password_or_the_token(goldpath, servers, status):
    evil = servers(lambda h: (200, {"Content-Type": "application/json"}, b'{"token": "stolen", "results": []}'))
    redirector = servers(lambda h: (status, {"Location": evil.url + h.path}, b""))
    login = goldpath(
        "login", "--url", redirector.url, "--username", "alice", "--password-stdin", stdin="hunter2-password\n"
    )
    assert login.code != 0 and "redirects to" in login.err
    store(goldpath, redirector.url)
    for args in (("whoami",), ("tools", "list"), ("whoami", "--json"), ("logout", "--revoke")):
        result = goldpath(*args)
        assert result.code != 0, (args, result)
        assert SECRET not in result.out + result.err
    assert evil.seen == []  # nothing at all reached the other host
    assert redirector.seen and all(SECRET in h.get("Authorization", "") for _, _, h in redirector.seen[1:])


def test_a_next_link_to_another_host_is_not_followed_with_the_token(goldpath, servers):
    evil = servers(lambda h: (200, {"Content-Type": "application/json"}, b'{"results": [], "next": null}'))

    def page(h):
        if "page=2" in h.path:
            body = {"count": 1, "next": None, "results": []}
        else:
            body = {"count": 1, "next": f"{evil.url}/api/v1/tools/?page=2", "results": []}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    portal = servers(page)
    store(goldpath, portal.url)
    result = goldpath("tools", "list", "--json")
    assert result.code == 0, result
    assert evil.seen == [] and not sent_token(evil)
    assert [p for _, p, _ in portal.seen if "page=2" in p]  # the next page was asked of the portal itself
    assert SECRET not in result.out + result.err


def test_the_token_file_is_private_under_a_careless_umask_and_an_open_folder(goldpath, people):
    goldpath.config_dir.mkdir(parents=True)
    os.chmod(goldpath.config_dir, 0o777)
    old = os.umask(0)
    try:
        result = goldpath("login", "--url", goldpath.url, "--username", "alice", "--password-stdin", stdin="x\n")
        assert result.code != 0  # a wrong password writes nothing
        assert not (goldpath.config_dir / "config.json").exists()
        goldpath.login("alice")
    finally:
        os.umask(old)
    config = goldpath.config_dir / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(goldpath.config_dir.stat().st_mode) == 0o700
    assert not [p for p in goldpath.config_dir.iterdir() if p.name != "config.json"]  # no temp file left behind


def test_json_output_never_carries_the_token(goldpath, people):
    login = goldpath("login", "--url", goldpath.url, "-u", "alice", "--password-stdin", "--json", stdin="x\n")
    assert login.code != 0
    login = goldpath("login", "--url", goldpath.url, "-u", "alice", "--password-stdin", "--json", stdin=PASSWORD + "\n")
    assert login.code == 0, login
    token = json.loads((goldpath.config_dir / "config.json").read_text())["token"]
    outputs = [login]
    for args in (("whoami", "--json"), ("tools", "list", "--json"), ("workspaces", "list", "--json")):
        outputs.append(goldpath(*args))
        assert outputs[-1].code == 0, outputs[-1]
    outputs.append(goldpath("whoami", "--json", env={"GOLDPATH_TOKEN": token}))
    outputs.append(goldpath("logout", "--json"))
    for result in outputs:
        assert token not in result.out + result.err
        assert token[-8:] not in result.out + result.err


def test_templates_push_never_packs_what_a_symlink_points_at(goldpath, people, tmp_path):
    template_services.template_create(actor=people["bob"], slug="echo", name="Echo")
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "secret.tf").write_text("# SECRET-OUTSIDE-FILE\n")
    (outside / "deep" / "key.pem").write_text("SECRET-OUTSIDE-DIR\n")
    folder = tmp_path / "echo"
    (folder / "modules").mkdir(parents=True)
    for name, text in ECHO.items():
        (folder / name).write_text(text)
    (folder / "stolen.tf").symlink_to(outside / "secret.tf")
    (folder / "modules" / "stolen.tf").symlink_to(outside / "secret.tf")
    (folder / "linked-dir").symlink_to(outside, target_is_directory=True)
    (folder / "modules" / "up").symlink_to("../..", target_is_directory=True)
    (folder / "passwd.tf").symlink_to("/etc/passwd")
    os.mkfifo(folder / "pipe.tf")  # opening it would hang the push
    goldpath.login("bob")
    result = goldpath("templates", "push", str(folder), "--no-publish", "--json", timeout=60)
    assert result.code == 0, result
    files = TemplateVersion.objects.get(template__slug="echo").files
    assert sorted(files) == sorted(ECHO)
    assert "SECRET-OUTSIDE" not in json.dumps(files) and "root:" not in json.dumps(files)


# --- provenance: a statement about another commit with the same prefix ----------------------------------


@pytest.fixture
def accepted(people, teams, tmp_path):
    """A real accepted agent run whose commit the portal signed."""
    demo_tool(people, teams)
    ToolVersion.objects.filter(tool__slug="demo-agent").update(review_state="approved")
    repo = make_repo()
    register(repo, people)
    group = agent_services.agent_group_create(
        actor=people["alice"], prompt="Add a greeting", repository="sample", agents=[{"tool": "demo-agent", "count": 1}]
    )
    run = group.runs.get()
    finish_run(run, diff=change_diff(repo, tmp_path), test_exit_code=0)
    agent_services.agent_group_accept(group=group, actor=people["alice"], run=run)
    worker_accepts(group)
    return repo, ProvenanceRecord.objects.get(run=run)


def grind_commit(repo, prefix: str) -> str:
    """A hand-made commit (not the agent's) whose hash starts with `prefix`: a nonce in the message is varied
    until it does, as anyone may do for a short prefix. Written into the repository; returns its hash."""
    tree = git(repo, "rev-parse", "HEAD^{tree}")
    parent = git(repo, "rev-parse", "HEAD")
    who = "Mallory <m@x> 1700000000 +0000"
    head = f"tree {tree}\nparent {parent}\nauthor {who}\ncommitter {who}\n\n"
    for nonce in range(50_000_000):
        body = f"{head}Hand-written change {nonce}\n".encode()
        sha = hashlib.sha1(b"commit %d\0" % len(body) + body).hexdigest()
        if sha.startswith(prefix):
            break
    written = (
        subprocess.run(
            ["git", "hash-object", "-t", "commit", "-w", "--stdin"],
            cwd=repo,
            input=body,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    assert written == sha
    return sha


def test_verify_of_a_prefix_is_not_a_verification_of_another_commit(goldpath, accepted):
    repo, record = accepted
    goldpath.login("alice")
    assert goldpath("provenance", "verify", record.commit_sha).code == 0  # the agent's own commit verifies
    mallory = grind_commit(repo, record.commit_sha[:5])
    assert mallory != record.commit_sha
    # the reviewer checks the hand-written commit by its abbreviated hash: the portal finds the agent's record
    result = goldpath("provenance", "verify", mallory[:5])
    assert result.code != 0, result
    assert "NOT verified" in result.err
    data = goldpath("provenance", "verify", mallory[:5], "--json")
    assert data.code != 0 and data.json["verified"] is False


@pytest.mark.parametrize(
    "args",
    [
        ("workspaces", "create", "--template", "../auth/tokens", "--name", "x"),
        ("workspaces", "create", "--template", ".."),
    ],
)
def test_a_typed_name_with_dot_segments_never_reaches_another_endpoint(goldpath, servers, args):
    """httpx resolves `agent-runs/../auth/tokens/` to `auth/tokens/`: the CLI refuses such a name instead."""
    portal = servers(
        lambda h: (200, {"Content-Type": "application/json"}, b'{"count": 0, "next": null, "results": []}')
    )
    store(goldpath, portal.url)
    result = goldpath(*args)
    assert result.code != 0, (args, result)
    assert "Not a valid name or id" in result.err
    assert not [p for _, p, _ in portal.seen if "auth/tokens" in p or p.rstrip("/").endswith("/api/v1")]
