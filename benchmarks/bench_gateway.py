"""Benchmark the model gateway (issue: model gateway), part (a): the latency the gateway adds to a model call.

    python benchmarks/bench_gateway.py                       # SQLite in a scratch home
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gp_gateway python benchmarks/bench_gateway.py --calls 300

Starts a model server process (tests/model_server.py: the scripted model over real HTTP, streamed SSE) and the
portal under waitress exactly as `make run` serves it (`python -m waitress ... portal.wsgi:application`) with
both upstreams pointed at the model server, creates a running agent run with its gateway credential and a
vendor key, then makes --calls calls per protocol x (non-streamed, streamed) through the gateway and the same
calls straight to the model server, interleaved, each over a kept-alive connection, timed from the request to
the last byte (streams: also to the first event). Prints p50/p99 of each, the gateway's added ms at p50 (target:
< 5 ms) and the ratio, and checks that every gateway call was metered (one ModelCall row each). Two passes: the
portal's settings as they are (persistent database connections, GOLDPATH_DB_CONN_MAX_AGE=60) and with a new
database connection per request (GOLDPATH_DB_CONN_MAX_AGE=0; --no-persistent skips that pass). Floors: a gateway
answer that touches no database (GET v1/responses, 426) and one that reads only the credential (GET v1/models).

Part (b), `--real-cli`: a group of real-CLI runs (10 each of Claude Code, Codex CLI and Aider) through the
sandbox, the egress relay and this gateway, on this machine (benchmarks/gateway_real_runs.py).
A scratch database (`<db>_bench_gateway` on PostgreSQL, or a file under a temporary GOLDPATH_HOME) is created
and removed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import free_port, organisation, pct, scratch_postgres, wait_http  # noqa: E402

BODIES = {
    "anthropic-messages": (
        "/v1/messages",
        {"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": [{"role": "user", "content": "Say hello"}]},
    ),
    "openai-responses": (
        "/v1/responses",
        {"model": "gpt-5-codex", "input": [{"role": "user", "content": [{"type": "input_text", "text": "Say hello"}]}]},
    ),
    "openai-chat": ("/v1/chat/completions", {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Hi"}]}),
}


def setup_run(model_server_url: str) -> str:
    """A running agent run of a granted, approved tool with a vendor key; returns its gateway credential."""
    from catalog.agents.identity import gateway_token_issue
    from catalog.models import AgentGroup, AgentRun, ToolVersion
    from catalog.services import access, tools
    from catalog.services.vendor_keys import vendor_api_key_set

    admin, platform, payments, bob, alice = organisation()
    tool = tools.tool_propose(
        actor=admin,
        data={
            "slug": "bench-cli",
            "name": "Bench CLI",
            "vendor": "Goldpath",
            "kind": "agent",
            "risk_tier": "low",
            "max_data_classification": "confidential",
            "owner_team": platform,
        },
    )
    tools.tool_request_review(tool=tool, actor=admin, reason="bench")
    tool.refresh_from_db()
    tools.tool_approve(tool=tool, actor=bob, reason="bench")
    version = ToolVersion.objects.create(
        tool=tool,
        version="1.0.0",
        launch_command=["bench", "{prompt}"],
        model_names=[body["model"] for _, body in BODIES.values()],
        review_state="approved",
    )
    access.grant_create(actor=bob, team=payments, tool=tool)
    vendor_api_key_set(team=payments, tool=tool, actor=bob, env_var="BENCH_API_KEY", value="sk-bench-vendor-key")
    group = AgentGroup.objects.create(
        requester=alice,
        team=payments,
        prompt="bench",
        prompt_sha256="0" * 64,
        repository_url="/bench",
        agents=[{"tool": "bench-cli", "count": 1}],
        time_limit_s=3600,
        status="running",
    )
    run = AgentRun.objects.create(group=group, index=1, tool=tool, tool_version=version, status="running")
    return gateway_token_issue(run)


class Caller:
    """One kept-alive connection; `call` returns seconds from sending the request to reading the last byte."""

    def __init__(self, port: int, prefix: str, headers: dict[str, str]):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.prefix = prefix
        self.headers = headers

    def get(self, path: str, expect: int) -> float:
        t0 = time.perf_counter()
        self.conn.request("GET", self.prefix + path, headers=self.headers)
        response = self.conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - t0
        if response.status != expect:
            raise SystemExit(f"GET {self.prefix}{path} answered {response.status}")
        return elapsed

    def call(self, path: str, body: bytes, protocol: str) -> tuple[float, float]:
        """(seconds to the last byte, seconds to the first body byte)."""
        headers = dict(self.headers)
        if protocol.startswith("anthropic"):
            headers["anthropic-version"] = "2023-06-01"
        t0 = time.perf_counter()
        self.conn.request("POST", self.prefix + path, body=body, headers=headers)
        response = self.conn.getresponse()
        first = response.read1(65536)
        ttfb = time.perf_counter() - t0
        data = first + response.read()
        elapsed = time.perf_counter() - t0
        if response.status != 200:
            raise SystemExit(f"{self.prefix}{path} answered {response.status}: {data[:300]!r}")
        return elapsed, ttfb


def measure(args, home: Path, env: dict[str, str], model_port: int, token: str) -> dict:
    """Start waitress with `env`, time the calls (interleaved with direct ones) and the floors, stop it."""
    web_port = free_port()
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "waitress",
            f"--listen=127.0.0.1:{web_port}",
            f"--threads={args.threads}",
            "--ident=goldpath",
            "portal.wsgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=open(home / "web.log", "a"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(web_port, "/healthz")
        vendor = "sk-bench-vendor-key"
        callers = {
            "anthropic": (
                Caller(model_port, "", {"Content-Type": "application/json", "x-api-key": vendor}),
                Caller(web_port, "/gateway", {"Content-Type": "application/json", "x-api-key": token}),
            ),
            "openai": (
                Caller(model_port, "", {"Content-Type": "application/json", "Authorization": f"Bearer {vendor}"}),
                Caller(web_port, "/gateway", {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}),
            ),
        }
        results: dict = {}
        for protocol in [p for p in args.protocols.split(",") if p]:
            path, body = BODIES[protocol]
            to_direct, to_gateway = callers[protocol.split("-")[0]]
            for mode, stream in (("json", False), ("sse", True)):
                raw = json.dumps({**body, "stream": stream}).encode()
                for _ in range(20):  # warm: URL resolver, connections, code paths
                    to_direct.call(path, raw, protocol)
                    to_gateway.call(path, raw, protocol)
                times: dict[str, list[float]] = {"direct": [], "gateway": [], "direct_first": [], "gateway_first": []}
                for _ in range(args.calls):
                    for side, caller in (("direct", to_direct), ("gateway", to_gateway)):
                        total, first = caller.call(path, raw, protocol)
                        times[side].append(total)
                        times[f"{side}_first"].append(first)
                    time.sleep(args.pause_ms / 1000)
                results[(protocol, mode)] = times
        gateway = callers["openai"][1]
        floors: dict[str, list[float]] = {"GET v1/responses (426, no database)": [], "GET v1/models (credential)": []}
        for _ in range(20):
            gateway.get("/v1/responses", 426)
        for _ in range(args.calls):
            floors["GET v1/responses (426, no database)"].append(gateway.get("/v1/responses", 426))
            floors["GET v1/models (credential)"].append(gateway.get("/v1/models", 200))
        return {"calls": results, "floors": floors}
    finally:
        web.terminate()
        try:
            web.wait(10)
        except subprocess.TimeoutExpired:
            web.kill()


def report(title: str, figures: dict) -> None:
    print(f"  {title}")
    added_all = []
    for (protocol, mode), times in figures["calls"].items():
        d50, d99 = pct(times["direct"], 50) * 1000, pct(times["direct"], 99) * 1000
        g50, g99 = pct(times["gateway"], 50) * 1000, pct(times["gateway"], 99) * 1000
        added_all.append(g50 - d50)
        first = ""
        if mode == "sse":
            f_added = (pct(times["gateway_first"], 50) - pct(times["direct_first"], 50)) * 1000
            first = f" | first event added p50 {f_added:5.2f} ms"
        print(
            f"    {protocol:19s} {mode:4s}  direct p50 {d50:6.2f} ms p99 {d99:6.2f} ms | gateway p50 {g50:6.2f} ms "
            f"p99 {g99:6.2f} ms | added p50 {g50 - d50:5.2f} ms, ratio {g50 / d50:4.2f}x{first}"
        )
    for label, values in figures["floors"].items():
        print(f"    floor: {label:38s} p50 {pct(values, 50) * 1000:5.2f} ms, p99 {pct(values, 99) * 1000:5.2f} ms")
    worst = max(added_all)
    print(f"    added at p50, worst case: {worst:.2f} ms (target < 5 ms: {'met' if worst < 5 else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300, help="calls per protocol x mode, each way")
    parser.add_argument("--protocols", default=",".join(BODIES), help="comma-separated: " + ", ".join(BODIES))
    parser.add_argument("--threads", type=int, default=32, help="waitress threads (goldpath_run's default)")
    parser.add_argument(
        "--pause-ms",
        type=float,
        default=5,
        help="pause between calls (a CLI never sends its next call within ms of the last byte; the gateway "
        "records each call right after its last byte, so back-to-back calls would also time the previous record)",
    )
    parser.add_argument(
        "--no-persistent", action="store_true", help="skip the second pass (a new database connection per request)"
    )
    parser.add_argument("--real-cli", action="store_true", help="part (b): a group of real-CLI runs instead")
    parser.add_argument("--runs-per-tool", type=int, default=10, help="(b) runs of each CLI in the group")
    parser.add_argument("--concurrency", type=int, default=2, help="(b) worker processes")
    parser.add_argument("--timeout", type=float, default=1800, help="(b) seconds to wait for the group")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="goldpath-bench-gateway-"))
    os.environ["GOLDPATH_HOME"] = str(home)
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    cleanup = None
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        os.environ["DATABASE_URL"], cleanup = scratch_postgres(os.environ["DATABASE_URL"], "bench_gateway")
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{home / 'bench.sqlite3'}"
    model = None
    try:
        # TCP_NODELAY on the model server's sockets, as vendors' servers behave: http.server writes headers and
        # body apart, and Nagle + delayed ACK would add ~40 ms to direct calls on a kept-alive connection
        nodelay = "import sys, tests.model_server as m; m.Handler.disable_nagle_algorithm = True; m.main(sys.argv[1:])"
        model = subprocess.Popen(
            [sys.executable, "-c", nodelay, "--port", "0", "--log", str(home / "model-server.jsonl")],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        model_port = int(model.stdout.readline().split()[1])
        model_url = f"http://127.0.0.1:{model_port}"
        os.environ["GOLDPATH_UPSTREAM_ANTHROPIC"] = model_url
        os.environ["GOLDPATH_UPSTREAM_OPENAI"] = model_url
        os.environ["GOLDPATH_LOG_LEVEL"] = "WARNING"

        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connections

        if args.real_cli:
            from benchmarks.gateway_real_runs import real_cli_runs

            real_cli_runs(args, home)
            return
        call_command("migrate", verbosity=0)
        token = setup_run(model_url)
        connections.close_all()

        passes = [("as configured (portal.settings: persistent connections, CONN_MAX_AGE=60)", {**os.environ})]
        if not args.no_persistent:
            env = {**os.environ, "GOLDPATH_DB_CONN_MAX_AGE": "0"}
            passes.append(("a new database connection per request (GOLDPATH_DB_CONN_MAX_AGE=0)", env))
        figures = [(title, measure(args, home, env, model_port, token)) for title, env in passes]

        from catalog.models import ModelCall

        protocols = [p for p in args.protocols.split(",") if p]
        expected = len(passes) * len(protocols) * 2 * (args.calls + 20)
        recorded = ModelCall.objects.filter(refused="").count()
        db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        print(
            f"model gateway benchmark: {args.calls} calls per protocol x mode each way, {os.cpu_count()} cores "
            f"(load {os.getloadavg()[0]:.1f}), waitress {args.threads} threads, database {db}, "
            f"upstream: model server process, {args.pause_ms:g} ms between calls"
        )
        for title, result in figures:
            report(title, result)
        print(f"  metered: {recorded} ModelCall rows for {expected} gateway calls")
    finally:
        if model is not None and model.poll() is None:
            model.terminate()
            model.wait(10)
        if cleanup:
            cleanup()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
