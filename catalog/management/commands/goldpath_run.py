"""`make run`: migrate, seed the demo, start the web server, a Celery worker and beat; Ctrl-C stops all.

The worker reaches the model gateway on this web server; vendors with no upstream configured get the offline
demo model, so agent tours work on a laptop with no internet."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from ...conf import demo_password, goldpath_home


class Command(BaseCommand):
    help = "Run the whole portal on this machine: web server, Celery worker and beat."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default=os.environ.get("GOLDPATH_BIND", "127.0.0.1"))
        parser.add_argument("--threads", type=int, default=int(os.environ.get("GOLDPATH_WEB_THREADS", "32")))
        parser.add_argument("--no-seed", action="store_true", help="do not load the demo organisation")
        parser.add_argument("--no-worker", action="store_true", help="do not start a Celery worker and beat")

    def handle(self, *args, **options) -> None:
        port, host = options["port"], options["host"]
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated.")
        if not options["no_seed"] and settings.DEBUG:
            call_command("seed_demo", verbosity=1, stdout=self.stdout)
        call_command("collectstatic", interactive=False, verbosity=0)

        children: list[subprocess.Popen] = []
        stopping = False

        def stop(*_args) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        env = {**os.environ, "GOLDPATH_HOME": str(goldpath_home())}
        # prometheus_client multiprocess mode: every web/worker process writes its HTTP metrics here, /metrics sums
        metrics_dir = goldpath_home() / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)  # counters of a previous run's dead processes
        metrics_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
        # the worker relays its sandboxes' model calls to this web server's gateway
        env.setdefault(
            "GOLDPATH_GATEWAY_URL",
            f"http://127.0.0.1:{port}" if host in ("0.0.0.0", "127.0.0.1") else f"http://{host}:{port}",
        )
        # a vendor whose upstream is not configured is answered by the offline demo model (no internet needed)
        demo_vendors = [v for v in ("ANTHROPIC", "OPENAI") if not os.environ.get(f"GOLDPATH_UPSTREAM_{v}")]
        for vendor in demo_vendors:
            env[f"GOLDPATH_UPSTREAM_{vendor}"] = "demo"
        try:
            if not options["no_worker"]:
                worker = [
                    sys.executable, "-m", "celery", "-A", "portal", "worker", "--beat",
                    "-Q", "default,provisioning,agents,reports",
                    "--concurrency", os.environ.get("GOLDPATH_WORKER_CONCURRENCY", "2"),
                    "--schedule", str(goldpath_home() / "celerybeat-schedule"),
                    "--loglevel", "INFO", "--hostname", f"goldpath-local-{os.getpid()}@%h",
                ]  # fmt: skip
                children.append(subprocess.Popen(worker, env=env, start_new_session=True, umask=0o077))
            # uvicorn: pages and API (the WSGI application on a thread pool, portal.asgi) and the terminals' WebSockets
            web = [
                sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", host, "--port", str(port),
                "--ws", "websockets-sansio", "--no-server-header", "--log-level", "warning",
            ]  # fmt: skip
            web_env = {**env, "GOLDPATH_WEB_THREADS": str(options["threads"])}
            children.append(subprocess.Popen(web, env=web_env, start_new_session=True, umask=0o077))
            url = f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else host}:{port}/"
            db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
            self.stdout.write(
                self.style.SUCCESS(f"\nGoldpath is running at {url}")
                + f"\n  database: {db}   broker: {settings.CELERY_BROKER_URL.split('://')[0]}   home: {goldpath_home()}"
                + f"\n  API docs: {url}api/docs/   health: {url}healthz"
                + (
                    f"\n  model gateway: {', '.join(v.lower() for v in demo_vendors)} answered by the offline demo "
                    "model (set GOLDPATH_UPSTREAM_<VENDOR> to call a real vendor)"
                    if demo_vendors
                    else ""
                )
            )
            if settings.DEBUG and not options["no_seed"]:
                self.stdout.write(
                    f"  demo logins (password '{demo_password()}'): alice, dave (developers), "
                    "bob, frank (platform engineers), carol (manager), erin (auditor), admin"
                )
            self.stdout.write("  Press Ctrl-C to stop.\n")
            while not stopping:
                for child in children:
                    if child.poll() is not None:
                        self.stderr.write(f"{child.args[2]} exited with {child.returncode}; stopping.")
                        stopping = True
                time.sleep(0.3)
        finally:
            self.stdout.write("Stopping Goldpath...")
            for child in children:
                if child.poll() is None:
                    # the worker's main process does a warm shutdown and stops its pool itself; the web server
                    # stops on SIGINT as on Ctrl-C, so its exit writes the model calls still being recorded
                    os.kill(child.pid, signal.SIGINT if "uvicorn" in child.args else signal.SIGTERM)
            deadline = time.monotonic() + 15
            for child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
            self.stdout.write("Stopped.")
