"""bench_gateway.py part (b): a group of real-CLI runs (Claude Code, Codex CLI, Aider; 10 of each by default) on
this machine, each in its sandbox, every model call through the egress relay and the model gateway (waitress,
as `make run` serves it) to the model server process. Prints the time from the request to all finished, how
many succeeded, per tool the run time p50/p99 and the model calls, tokens and cost metered, and the gateway's
share of the run time (sum of ModelCall latency over the sum of run durations).

The runtimes come from GOLDPATH_TOOLS_DIR (`python manage.py tools_install claude-code codex-cli aider`); a
missing one is installed by the worker on first use (and that time counts).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import free_port, make_repo, organisation, pct, wait_http

ROOT = Path(__file__).resolve().parent.parent


def _organisation(home: Path) -> object:
    """alice in payments; the three real CLIs as the seed defines them, approved, granted, with vendor keys."""
    from catalog.demo import REAL_AGENTS
    from catalog.models import ToolVersion
    from catalog.services import access, tools
    from catalog.services.repositories import repository_create
    from catalog.services.vendor_keys import vendor_api_key_set

    admin, platform, payments, bob, alice = organisation()
    for slug, spec in REAL_AGENTS.items():
        tool = tools.tool_propose(
            actor=admin,
            data={
                "slug": slug,
                "name": slug,
                "vendor": "bench",
                "kind": "agent",
                "risk_tier": "low",
                "max_data_classification": "confidential",
                "owner_team": platform,
            },
        )
        ToolVersion.objects.create(tool=tool, review_state="approved", **spec)
        tools.tool_request_review(tool=tool, actor=admin, reason="bench")
        tool.refresh_from_db()
        tools.tool_approve(tool=tool, actor=bob, reason="bench")
        access.grant_create(actor=bob, team=payments, tool=tool)
        vendor_api_key_set(team=payments, tool=tool, actor=bob, env_var="BENCH_API_KEY", value=f"sk-bench-{slug}")
    repo = make_repo(home / "repositories" / "bench", modules=0)
    repository_create(
        actor=bob, slug="bench", name="Bench service", url=str(repo), teams=["payments"], default_branch="main"
    )
    return alice


def real_cli_runs(args, home: Path) -> None:
    """Run the group and print its figures (the caller made the scratch home, database and model server)."""
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    alice = _organisation(home)
    connections.close_all()
    web_port = free_port()
    gateway = f"http://127.0.0.1:{web_port}"
    env = {**os.environ, "GOLDPATH_GATEWAY_URL": gateway, "GOLDPATH_AGENT_TEAM_CONCURRENCY": str(args.concurrency)}
    log = open(home / "processes.log", "a")  # noqa: SIM115
    web = subprocess.Popen(
        [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{web_port}", f"--threads={args.threads}",
         "portal.wsgi:application"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", "agents,default",
         "--concurrency", str(args.concurrency), "--loglevel", "WARNING", "--without-mingle", "--without-gossip",
         "--hostname", f"bench-gateway-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_http(web_port, "/healthz")
        from catalog.models import AgentGroup, AgentRun, ModelCall
        from catalog.services.agent_groups import agent_group_create
        from portal.celery import app

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not app.control.ping(timeout=0.5):
            time.sleep(0.5)
        per_tool = args.runs_per_tool
        agents = [{"tool": slug, "count": per_tool} for slug in ("claude-code", "codex-cli", "aider")]
        t0 = time.perf_counter()
        group = agent_group_create(
            actor=alice, prompt="Benchmark: write a short note", repository="bench", agents=agents
        )
        while AgentGroup.objects.get(pk=group.pk).status not in ("finished", "canceled"):
            if time.perf_counter() - t0 > args.timeout:
                raise SystemExit(f"the group did not finish in {args.timeout} s (see {home / 'processes.log'})")
            time.sleep(0.25)
        elapsed = time.perf_counter() - t0
        runs = list(AgentRun.objects.filter(group=group).select_related("tool"))
        ok = sum(r.status == "succeeded" for r in runs)
        print(
            f"real-CLI runs: {len(runs)} runs ({per_tool} each of claude-code, codex-cli, aider), {os.cpu_count()} "
            f"cores, worker concurrency {args.concurrency}, database {connections['default'].vendor}"
        )
        print(f"  request to all finished: {elapsed:.1f} s; succeeded: {ok}/{len(runs)}")
        gateway_ms = run_ms = 0.0
        for slug in ("claude-code", "codex-cli", "aider"):
            mine = [r for r in runs if r.tool.slug == slug]
            durations = [r.duration_s or 0 for r in mine]
            calls = ModelCall.objects.filter(run__in=mine)
            latency = sum(calls.values_list("latency_ms", flat=True))
            gateway_ms += latency
            run_ms += sum(durations) * 1000
            print(
                f"  {slug:12s} run p50 {pct(durations, 50):5.1f} s p99 {pct(durations, 99):5.1f} s | model calls "
                f"{sum(r.model_calls for r in mine):3d} | tokens in {sum(r.input_tokens for r in mine):7d} out "
                f"{sum(r.output_tokens for r in mine):5d} | cost ${sum(r.cost_usd for r in mine):.6f}"
            )
            for r in mine:
                if r.status != "succeeded":
                    print(f"    run {r.pk} {r.status}: {r.error[:200]}")
        share = gateway_ms / run_ms * 100 if run_ms else 0
        print(f"  time inside gateway calls (upstream included): {gateway_ms / 1000:.1f} s of {run_ms / 1000:.1f} s "
              f"run time ({share:.1f} %)")  # fmt: skip
    finally:
        for proc in (worker, web):
            proc.terminate()
        for proc in (worker, web):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
