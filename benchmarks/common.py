"""What the benchmarks share: percentiles, a scratch PostgreSQL database, ports, a small git repository."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def scratch_postgres(url: str, suffix: str):
    """A fresh `<db>_<suffix>` database next to the one `url` names; returns its URL and a cleanup."""
    import psycopg

    parts = urlparse(url)
    name = (parts.path.lstrip("/") or "goldpath") + "_" + suffix
    admin = urlunparse(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')

    def cleanup() -> None:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunparse(parts._replace(path="/" + name)), cleanup


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing answered on port {port} in {timeout:.0f} s")


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "B", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "B"}
    env["GIT_COMMITTER_EMAIL"] = "b@x"
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def make_repo(path: Path, modules: int = 20) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# Bench service\n")
    for i in range(modules):
        (path / f"module_{i}.py").write_text(f"VALUE = {i}\n" * 50)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "init")
    return path


def organisation():
    """The benchmarks' people: admin, teams platform and payments, bob (platform engineer), alice (in payments)."""
    from django.contrib.auth import get_user_model

    from catalog.services import teams

    User = get_user_model()
    admin = User.objects.create_superuser("admin", "admin@example.com", "x")
    teams._set_role(admin, "admin")
    platform = teams.team_create(actor=admin, slug="platform", name="Platform")
    payments = teams.team_create(actor=admin, slug="payments", name="Payments")
    bob = User.objects.create_user("bob", "bob@example.com", "x")
    teams._set_role(bob, "platform_engineer")
    alice = User.objects.create_user("alice", "alice@example.com", "x")
    teams.team_member_add(team=payments, actor=admin, user=alice)
    return admin, platform, payments, bob, alice
