"""Benchmark workspace provisioning (issue 4). Not a timed test; prints figures.

    python benchmarks/bench_workspaces.py            # PostgreSQL+Redis (if reachable) and the embedded default
    python benchmarks/bench_workspaces.py --only embedded --count 20

(a) create-to-running time of one workspace through the portal (API service -> broker -> worker ->
    terraform init/plan/apply -> running) against the same `terraform init`, `plan -out`, `apply plan`
    run directly by a script on the same template: ratio and absolute overhead per build (target < 200 ms);
(b) N workspaces requested at once (default 50): time until all are running, builds per minute,
    with 1 and with 2 worker processes;
(c) the same on the embedded default (SQLite + file-system broker), reported beside.

Each backend runs in a child process with its own scratch database (`<db>_wsbench` on PostgreSQL,
a temporary SQLite file otherwise) and a temporary GOLDPATH_HOME.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gp_workspaces")
REDIS_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/3")
TEMPLATE = {
    "main.tf": """
variable "repository" {
  type = string
}
variable "goldpath_workspace_id" {
  type = string
}
variable "goldpath_home" {
  type = string
}
resource "terraform_data" "workspace" {
  input = "${var.goldpath_home}/wsb/${var.goldpath_workspace_id}"
  provisioner "local-exec" {
    command     = "mkdir -p \\"$DIR\\""
    environment = { DIR = self.input }
  }
}
output "path" {
  value = terraform_data.workspace.input
}
"""
}


# --- orchestrator --------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["postgres", "embedded"], default=None)
    parser.add_argument("--count", type=int, default=50, help="workspaces requested at once")
    parser.add_argument("--single", type=int, default=5, help="sequential create-to-running samples")
    parser.add_argument("--child", choices=["postgres", "embedded"], default=None)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.count, args.single)))
        return
    results = {}
    for backend in ("postgres", "embedded"):
        if args.only and backend != args.only:
            continue
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "GOLDPATH_HOME")}
        home = tempfile.mkdtemp(prefix=f"gp-wsbench-{backend}-")
        env["GOLDPATH_HOME"] = home
        env["GOLDPATH_MAX_WORKSPACES"] = "100000"
        env["GOLDPATH_MAX_CONCURRENT_BUILDS"] = "100000"
        if backend == "postgres":
            try:
                db_url = _pg_scratch(PG_URL)
            except Exception as exc:  # noqa: BLE001
                print(f"postgres: skipped ({exc})")
                continue
            env["DATABASE_URL"] = db_url
            env["CELERY_BROKER_URL"] = REDIS_URL
        cmd = [sys.executable, __file__, "--child", backend, "--count", str(args.count), "--single", str(args.single)]
        proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            print(f"{backend}: failed\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            continue
        results[backend] = json.loads(proc.stdout.strip().splitlines()[-1])
        shutil.rmtree(home, ignore_errors=True)
        if backend == "postgres":
            _pg_drop(PG_URL)
    report(results, args.count)


def _pg_names(url: str) -> tuple[str, str]:
    parts = urlparse(url)
    return urlunparse(parts._replace(path="/postgres")), parts.path.lstrip("/") + "_wsbench"


def _pg_scratch(url: str) -> str:
    import psycopg

    admin, name = _pg_names(url)
    with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunparse(urlparse(url)._replace(path="/" + name))


def _pg_drop(url: str) -> None:
    import psycopg

    admin, name = _pg_names(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def report(results: dict, count: int) -> None:
    print("\nWorkspace provisioning benchmark (local-sandbox-like template, terraform_data + local-exec)")
    print(f"{'':44}" + "".join(f"{b:>18}" for b in results))
    rows = [
        ("direct terraform init+plan+apply (median)", "direct_ms", "{:.0f} ms"),
        ("portal create-to-running (median)", "portal_ms", "{:.0f} ms"),
        ("overhead per build", "overhead_ms", "{:.0f} ms"),
        ("ratio portal / direct", "ratio", "{:.2f}x"),
        (f"{count} at once, 1 worker: all running", "burst1_s", "{:.1f} s"),
        ("  builds per minute, 1 worker", "burst1_bpm", "{:.0f}"),
        (f"{count} at once, 2 workers: all running", "burst2_s", "{:.1f} s"),
        ("  builds per minute, 2 workers", "burst2_bpm", "{:.0f}"),
    ]
    for label, key, fmt in rows:
        print(f"{label:44}" + "".join(f"{fmt.format(r[key]):>18}" for r in results.values()))
    print("\nTarget: overhead under 200 ms per build.")


# --- child: one backend ----------------------------------------------------------------------------
def child(backend: str, count: int, single: int) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from catalog.conf import goldpath_home
    from catalog.models import Workspace
    from catalog.services import templates as template_services
    from catalog.services import workspaces as ws_services
    from tests.factories import TeamFactory, UserFactory

    team = TeamFactory(slug="bench")
    user = UserFactory(username="bench", role="developer")
    user.groups.add(team.group)  # the team's group is its membership
    # workspaces name a registered repository by slug; the build passes its checked path to Terraform
    from catalog.services.repositories import repository_create
    from tests.agent_helpers import make_repo

    repo = make_repo()
    repository_create(
        actor=UserFactory(username="bench-platform", role="platform_engineer"),
        slug="bench-repo",
        name="Bench repository",
        url=str(repo),
        teams=["bench"],
    )
    template = template_services.template_create(actor=None, slug="bench", name="Bench")
    version, _ = template_services.template_version_create(template=template, actor=None, files=TEMPLATE)
    template_services.validate_and_publish(version.pk)
    version.refresh_from_db()
    assert version.status == "published", version.diagnostics
    template_services.template_version_activate(version=version, actor=None)
    template.refresh_from_db()

    direct = [_direct_run(goldpath_home() / "direct" / str(i), str(repo)) for i in range(single)]

    def create(name: str) -> str:
        return str(
            ws_services.workspace_create(
                actor=user, name=name, template=template, parameters={"repository": "bench-repo"}
            ).pk
        )

    def wait_running(ids: list[str], timeout: float = 900) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = Workspace.objects.filter(pk__in=ids, status__in=["running", "failed"]).count()
            if done == len(ids):
                failed = Workspace.objects.filter(pk__in=ids, status="failed").count()
                if failed:
                    raise RuntimeError(f"{failed} workspaces failed")
                return time.monotonic()
            time.sleep(0.005)
        raise RuntimeError("timeout")

    workers = [_start_worker(1, "w1")]
    try:
        create("warmup")  # first init of the plugin cache, worker imports
        wait_running([str(Workspace.objects.get(name="warmup").pk)])
        portal = []
        for i in range(single):
            t0 = time.monotonic()
            ws_id = create(f"single-{i}")
            portal.append(wait_running([ws_id]) - t0)
        t0 = time.monotonic()
        ids = [create(f"b1-{i}") for i in range(count)]
        burst1 = wait_running(ids) - t0
        workers.append(_start_worker(1, "w2"))
        t0 = time.monotonic()
        ids = [create(f"b2-{i}") for i in range(count)]
        burst2 = wait_running(ids) - t0
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                w.kill()
    d, p = statistics.median(direct) * 1000, statistics.median(portal) * 1000
    return {
        "direct_ms": d,
        "portal_ms": p,
        "overhead_ms": p - d,
        "ratio": p / d,
        "burst1_s": burst1,
        "burst1_bpm": count / burst1 * 60,
        "burst2_s": burst2,
        "burst2_bpm": count / burst2 * 60,
    }


def _start_worker(concurrency: int, name: str) -> subprocess.Popen:
    from django.db import connection

    from catalog.conf import goldpath_home

    env = dict(os.environ)
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{connection.settings_dict['NAME']}"
    log = open(goldpath_home() / f"worker-{name}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "-Q",
            "provisioning",
            "--concurrency",
            str(concurrency),
            "--without-mingle",
            "--without-gossip",
            "-n",
            f"{name}@%h",
            "-l",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    time.sleep(2.5)
    return proc


def _direct_run(folder: Path, repository: str) -> float:
    """The same template by a plain script: init, plan -out, apply the plan (local state), given the
    repository's resolved address as the portal would."""
    folder.mkdir(parents=True, exist_ok=True)
    for rel, text in TEMPLATE.items():
        (folder / rel).write_text(text)
    (folder / "terraform.tfvars.json").write_text(
        json.dumps({"repository": repository, "goldpath_workspace_id": folder.name, "goldpath_home": str(folder)})
    )
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    binary = os.environ.get("GOLDPATH_TERRAFORM_BIN") or shutil.which("terraform") or "terraform"
    t0 = time.monotonic()
    for args in (["init", "-input=false"], ["plan", "-input=false", "-out=plan"], ["apply", "-input=false", "plan"]):
        subprocess.run([binary, *args], cwd=folder, env=env, check=True, capture_output=True)
    return time.monotonic() - t0


if __name__ == "__main__":
    main()
