"""Attacks from inside a real sandbox (real Celery worker, bubblewrap, egress proxy, web tier): the program the
agent runs (a stand-in for a prompt-injected agent's shell tool) talks to the proxy port 127.0.0.1:3128."""

from __future__ import annotations

import json
import uuid

import pytest

from catalog.models import AgentGroup, AgentRun, ModelCall, ToolVersion
from tests.agent_helpers import demo_tool, make_repo, register
from tests.conftest import WorkerProcess, purge_queues, require_binary, wait_for

pytestmark = [pytest.mark.integration]

AGENT = r"""
import json, os, socket, sys
tok = os.environ["ANTHROPIC_API_KEY"]
agent_tok = os.environ.get("GOLDPATH_AGENT_TOKEN", "")
web_port = sys.argv[2]

def raw(data):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=15)
    s.sendall(data.encode("latin-1") if isinstance(data, str) else data)
    out = b""
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            out += c
    except OSError:
        pass
    s.close()
    return out.decode("latin-1")

def messages(body):
    return raw(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\nanthropic-version: 2023-06-01\r\n"
        "Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (tok, len(body), body)
    )

if sys.argv[1] == "nul":
    answer = messages('{"model": "claude-opus-4-1\\u0000", "max_tokens": 16, "messages": []}')
    print("NUL " + answer.split("\r\n", 1)[0])
    sys.exit(0)

C = "Connection: close\r\n"
tricks = {
    "origin-api": "GET /api/v1/teams/ HTTP/1.1\r\nHost: x\r\n" + C + "\r\n",
    "dot-segments": "GET /v1/../api/v1/teams/ HTTP/1.1\r\nHost: x\r\n" + C + "\r\n",
    "pct-dots": "GET /v1/%2e%2e/api/v1/teams/ HTTP/1.1\r\nHost: x\r\n" + C + "\r\n",
    "deep-dots": "GET /v1/models/../../admin/ HTTP/1.1\r\nHost: x\r\n" + C + "\r\n",
    "double-slash": "GET //v1/models HTTP/1.1\r\nHost: x\r\n" + C + "\r\n",
    "query-path": "GET /v1/models?next=/admin/ HTTP/1.1\r\nHost: x\r\n" + C + "\r\n",
    "absolute-api": "GET http://127.0.0.1:3128/api/v1/teams/ HTTP/1.1\r\nHost: x\r\n" + C + "\r\n",
    "absolute-web": "GET http://127.0.0.1:%s/api/v1/teams/ HTTP/1.1\r\nHost: x\r\n%s\r\n" % (web_port, C),
    "connect-web": "CONNECT 127.0.0.1:%s HTTP/1.1\r\nHost: x\r\n\r\n" % web_port,
    "asterisk": "OPTIONS * HTTP/1.1\r\nHost: x\r\n" + C + "\r\n",
    "pipelined": "POST /v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nGET /api/v1/teams/ HTTP/1.1\r\nHost: x\r\n" + C + "\r\n",
    "chunked-smuggle": "POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin/ HTTP/1.1\r\nHost: x\r\n" + C + "\r\n",
    "cl-te": "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin/ HTTP/1.1\r\nHost: x\r\n\r\n",
    "te-obfuscated": "POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n" + C + "\r\n0\r\n\r\n",
    "host-games": "GET http://LOCALHOST:3128/v1/models HTTP/1.1\r\nHost: admin.evil\r\nX-Forwarded-Host: evil\r\nX_Forwarded_Host: evil\r\nX-Original-URL: /admin/\r\nx-api-key: %s\r\n%s\r\n" % (tok, C),
    "agent-token-at-gateway": "GET /v1/models HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\n%s\r\n" % (agent_tok, C),
    "delete-method": "DELETE /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\n%s\r\n" % (tok, C),
    "upgrade": "GET /v1/responses HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    "bare-lf": "GET /v1/models HTTP/1.1\nHost: x\nX-A: b\r\nGET /admin/ HTTP/1.1\r\n" + C + "\r\n",
}
out = {}
for name, data in tricks.items():
    answer = raw(data)
    out[name] = {
        "status": [l for l in answer.split("\r\n") if l.startswith("HTTP/1.")],
        "gateway": "x-goldpath-gateway" in answer.lower() or '"models"' in answer or '"data"' in answer,
        "html": "<html" in answer.lower() or "csrf" in answer.lower() or "/login" in answer,
    }
# the gateway credential on the run's own agent socket (the agent endpoints)
sock_path = os.environ.get("GOLDPATH_AGENT_SOCKET", "")
if sock_path:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    api = os.environ["GOLDPATH_AGENT_API"]
    body = '{"message": "hi"}'
    s.sendall(("POST %sprogress/ HTTP/1.1\r\nHost: x\r\nAuthorization: Agent %s\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (api, tok, len(body), body)).encode())
    data = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        data += c
    out["gateway-token-at-agent-api"] = {"status": [data.decode("latin-1").split("\r\n", 1)[0]]}
for name, result in out.items():
    print("TRICK " + json.dumps([name, result]))
"""


@pytest.fixture
def attack_world(transactional_db, people, teams, live_server, settings, monkeypatch):
    require_binary("bwrap", "bubblewrap")
    tool = demo_tool(people, teams)
    register(make_repo(), people, slug="payments-app", teams=("payments",))
    settings.GOLDPATH = {**settings.GOLDPATH, "UPSTREAM_ANTHROPIC": "demo", "UPSTREAM_OPENAI": "demo"}
    monkeypatch.setenv("GOLDPATH_GATEWAY_URL", live_server.url)
    purge_queues()
    worker = WorkerProcess(concurrency=1).start()
    yield {"tool": tool, "port": live_server.url.rsplit(":", 1)[1]}
    worker.stop()


def run_agent(api, people, world, mode: str) -> AgentRun:
    ToolVersion.objects.create(
        tool=world["tool"],
        version=f"9.{uuid.uuid4().hex[:6]}",
        launch_command=["python3", "-c", AGENT, mode, world["port"], "{prompt}"],
        model_names=["claude-sonnet-4-5"],
        review_state="approved",
    )
    body = {"prompt": "go", "repository": "payments-app", "agents": [{"tool": "demo-agent", "count": 1}]}
    response = api(people["alice"]).post("/api/v1/agent-groups/", body, format="json")
    assert response.status_code == 201, response.content
    gid = response.json()["id"]
    wait_for(lambda: AgentGroup.objects.get(pk=gid).status in ("finished", "canceled"), timeout=90, message="run")
    return AgentRun.objects.get(group_id=gid)


def log_of(run: AgentRun) -> str:
    return "\n".join(run.log_lines.order_by("seq").values_list("text", flat=True))


def test_a_run_whose_model_call_was_refused_does_not_succeed(api, people, attack_world):
    """The agent asks for a model its version does not list, with a NUL in the name, then exits 0. The gateway
    500s while writing the refusal (PostgreSQL refuses NUL), so nothing is recorded, no audit event is written
    and the run ends `succeeded`, although its model call was refused."""
    run = run_agent(api, people, attack_world, "nul")
    log = log_of(run)
    assert "NUL HTTP/1.1" in log, log
    assert run.status == "failed", (run.status, [line for line in log.splitlines() if "NUL" in line])
    assert ModelCall.objects.filter(run=run).exclude(refused="").exists()


def test_held_the_proxy_port_reaches_nothing_but_the_gateway(api, people, attack_world):
    """Held: path tricks, absolute targets, Host games, pipelining and smuggling, methods; the agent token at the
    gateway and the gateway credential at the agent API."""
    run = run_agent(api, people, attack_world, "tricks")
    results = dict(json.loads(x[len("TRICK ") :]) for x in log_of(run).splitlines() if x.startswith("TRICK "))
    print(json.dumps(results, indent=1))
    for name, result in results.items():
        assert not result.get("html"), (name, result)
    for name in ("origin-api", "dot-segments", "pct-dots", "deep-dots", "double-slash", "query-path", "absolute-api"):
        assert results[name]["status"][0].startswith("HTTP/1.1 404"), (name, results[name])
    assert results["absolute-web"]["status"][0].startswith("HTTP/1.1 403")
    assert results["connect-web"]["status"][0].startswith("HTTP/1.1 403")
    # the request after the first on a connection is parsed by the proxy again (404) or never served at all
    for name in ("pipelined", "chunked-smuggle"):
        assert [s[:12] for s in results[name]["status"][1:]] in ([], ["HTTP/1.1 404"]), (name, results[name])
    assert results["cl-te"]["status"][0].startswith("HTTP/1.1 400")
    assert results["agent-token-at-gateway"]["status"][0].startswith("HTTP/1.1 401")
    assert results["gateway-token-at-agent-api"]["status"][0][9:12] in ("401", "403")
