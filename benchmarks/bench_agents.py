"""Benchmark parallel agent runs (issue 5): 100 demo-agent runs in one group, through a real Celery worker and
real bubblewrap, on this machine (2 cores). Not a timed test.

    python benchmarks/bench_agents.py                       # SQLite + file-system broker in a scratch home
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gp_agents CELERY_BROKER_URL=redis://127.0.0.1:6379/4 \
        python benchmarks/bench_agents.py --runs 100 --concurrency 4

Measures:
  - time from the POST /api/v1/agent-groups/ request to every run finished (and runs/s);
  - per run: time in the worker (started_at -> finished_at: clone, sandboxed agent, diff), p50/p99;
  - sandbox overhead per run: the demo agent started through the SandboxRunner (bubblewrap with the whole
    profile, limits, egress proxy and agent socket, exactly as a run does) against the same demo agent started
    bare (`python -P -m catalog.demo_agent` in a copy, reporting through an agent socket too), p50/p99 over
    --samples sequential starts each, and their difference (target: p50 overhead at most 15 ms).
A scratch database (`<db>_bench_agents` on PostgreSQL, or a file under a temporary GOLDPATH_HOME) is created
and removed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import make_repo, organisation, pct, scratch_postgres  # noqa: E402


def overhead(samples: int, home: Path) -> dict[str, list[float]]:
    """Sequential starts of the demo agent: bare vs through the SandboxRunner (as a run uses it: bubblewrap with
    the whole profile, limits, the egress proxy and the run's agent socket). The bare agent gets an agent socket
    too, so both do the same work (two reports through the socket) and the difference is the sandbox's."""
    from catalog.runners.agentsock import AgentSocket
    from catalog.runners.sandbox import SandboxRunner, expand_argv, private_dir, sandbox_root

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    def agent_socket(path):
        return AgentSocket(path, app, run_id="1", paths=[r"/bench/(progress|result)/"])

    root = private_dir(sandbox_root(), "bench-", None)  # sandboxes of a root worker run as their own uid
    os.chmod(root, 0o711)
    repo = make_repo(root / "overhead-repo")
    argv = ["python3", "-m", "catalog.demo_agent", "--index", "{index}", "--prompt={prompt}"]
    results: dict[str, list[float]] = {"bare": [], "sandbox": [], "sandbox_no_proxy": []}
    python = SandboxRunner(argv, repo)._python()
    try:
        for i in range(samples):
            for mode in ("bare", "sandbox", "sandbox_no_proxy"):
                copy = root / f"copy-{mode}-{i}"
                shutil.copytree(repo, copy)
                cmd = expand_argv(argv, "Benchmark prompt", i)
                t0 = time.perf_counter()
                if mode == "bare":
                    sock = agent_socket(copy.parent / f"bare-{i}.sock")
                    sock.start()
                    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "GOLDPATH_AGENT_SOCKET": str(sock.path)}
                    env |= {"GOLDPATH_AGENT_TOKEN": "t", "GOLDPATH_AGENT_API": "/bench/"}
                    proc = subprocess.run([python, "-P", *cmd[1:]], cwd=copy, env=env, capture_output=True)
                    sock.stop()
                    assert proc.returncode == 0, proc.stderr
                else:
                    result = SandboxRunner(
                        cmd,
                        copy,
                        network=[] if mode == "sandbox" else "none",
                        time_limit=60,
                        secrets={"GOLDPATH_AGENT_TOKEN": "t"},
                        env={"GOLDPATH_AGENT_API": "/bench/"},
                        agent_socket=agent_socket,
                    ).run()
                    assert result.status == "succeeded", result
                results[mode].append(time.perf_counter() - t0)
                shutil.rmtree(copy, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4, help="worker processes on the agents queue")
    parser.add_argument("--samples", type=int, default=50, help="sequential starts for the overhead figures")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="goldpath-bench-agents-"))
    os.environ["GOLDPATH_HOME"] = str(home)
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    os.environ["GOLDPATH_AGENT_TEAM_CONCURRENCY"] = str(args.concurrency)
    cleanup = None
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        os.environ["DATABASE_URL"], cleanup = scratch_postgres(os.environ["DATABASE_URL"], "bench_agents")
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{home / 'bench.sqlite3'}"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from catalog.models import AgentGroup, AgentRun
    from catalog.services import access, tool_versions, tools
    from portal.celery import app

    worker = None
    try:
        call_command("migrate", verbosity=0)
        admin, platform, payments, bob, alice = organisation()
        tool = tools.tool_propose(
            actor=admin,
            data={
                "slug": "demo-agent",
                "name": "Demo agent (offline demo)",
                "vendor": "Goldpath",
                "kind": "agent",
                "risk_tier": "low",
                "max_data_classification": "confidential",
                "owner_team": platform,
            },
        )
        argv = ["python3", "-m", "catalog.demo_agent", "--index", "{index}", "--prompt={prompt}"]
        tool_versions.tool_version_add(tool=tool, actor=admin, data={"version": "1.0.0", "launch_command": argv})
        tools.tool_request_review(tool=tool, actor=admin, reason="bench")
        tool.refresh_from_db()
        tools.tool_approve(tool=tool, actor=bob, reason="bench")
        access.grant_create(actor=bob, team=payments, tool=tool)
        from catalog.services.repositories import repository_create

        repo = make_repo(home / "repositories" / "bench")
        repository_create(
            actor=bob, slug="bench", name="Bench service", url=str(repo), teams=["payments"], default_branch="main"
        )

        env = {**os.environ}
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "-Q",
                "agents,default",
                "--concurrency",
                str(args.concurrency),
                "--loglevel",
                "WARNING",
                "--without-mingle",
                "--without-gossip",
                "--hostname",
                f"bench-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=open(home / "worker.log", "w"),
            stderr=subprocess.STDOUT,  # noqa: SIM115
            start_new_session=True,
        )
        ping_deadline = time.monotonic() + 60
        while time.monotonic() < ping_deadline and not app.control.ping(timeout=0.5):
            time.sleep(0.5)

        client = APIClient()
        client.force_authenticate(alice)
        body = {
            "prompt": "Benchmark: add a line",
            "repository": "bench",
            "agents": [{"tool": "demo-agent", "count": args.runs}],
        }
        client.get("/api/v1/agent-groups/")  # warm: URL resolver, serializers, first connection
        t0 = time.perf_counter()
        response = client.post("/api/v1/agent-groups/", body, format="json")
        t_created = time.perf_counter() - t0
        assert response.status_code == 201, response.content
        gid = response.json()["id"]
        while AgentGroup.objects.get(pk=gid).status not in ("finished", "canceled"):
            time.sleep(0.05)
            if time.perf_counter() - t0 > 1800:
                raise SystemExit("runs did not finish in 30 minutes")
        total = time.perf_counter() - t0
        runs = list(AgentRun.objects.filter(group_id=gid))
        statuses = {}
        for r in runs:
            statuses[r.status] = statuses.get(r.status, 0) + 1
        in_worker = [(r.finished_at - r.started_at).total_seconds() for r in runs if r.started_at and r.finished_at]
        worker.terminate()
        worker.wait(30)
        worker = None

        over = overhead(args.samples, home)
        bare_p50, sbx_p50, nop_p50 = (statistics.median(over[k]) for k in ("bare", "sandbox", "sandbox_no_proxy"))
        db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        broker = settings.CELERY_BROKER_URL.split("://")[0]
        print(
            f"agent runs benchmark: {args.runs} demo-agent runs, {os.cpu_count()} cores, worker concurrency "
            f"{args.concurrency}, database {db}, broker {broker}"
        )
        print(f"  request answered (201) in {t_created * 1000:.0f} ms")
        print(f"  request -> all {args.runs} finished: {total:.2f} s ({args.runs / total:.1f} runs/s); {statuses}")
        print(
            f"  per run in the worker (clone + sandboxed agent + diff): p50 {pct(in_worker, 50) * 1000:.0f} ms, "
            f"p99 {pct(in_worker, 99) * 1000:.0f} ms"
        )
        print(
            f"  demo agent bare:                       p50 {bare_p50 * 1000:.1f} ms, p99 {pct(over['bare'], 99) * 1000:.1f} ms"
        )
        print(
            f"  demo agent in the sandbox (as runs):   p50 {sbx_p50 * 1000:.1f} ms, p99 {pct(over['sandbox'], 99) * 1000:.1f} ms"
            f"  -> ratio {sbx_p50 / bare_p50:.2f}x, overhead {(sbx_p50 - bare_p50) * 1000:.1f} ms"
        )
        over_p99 = (pct(over["sandbox"], 99) - pct(over["bare"], 99)) * 1000
        print(
            f"  sandbox start overhead (proxy + agent socket): p50 {(sbx_p50 - bare_p50) * 1000:.1f} ms "
            f"(target <= 15 ms: {'met' if (sbx_p50 - bare_p50) * 1000 <= 15 else 'NOT met'}), p99 {over_p99:.1f} ms"
        )
        print(
            f"  in the sandbox without egress proxy:   p50 {nop_p50 * 1000:.1f} ms, p99 {pct(over['sandbox_no_proxy'], 99) * 1000:.1f} ms"
            f"  -> ratio {nop_p50 / bare_p50:.2f}x, overhead {(nop_p50 - bare_p50) * 1000:.1f} ms"
        )
        print(f"  ({args.samples} sequential starts each)")
    finally:
        if worker is not None:
            os.killpg(worker.pid, 9)
        if cleanup:
            cleanup()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
