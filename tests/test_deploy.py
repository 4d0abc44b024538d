"""Production settings pass Django's deployment checks; the portal refuses to start insecurely."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_passes_with_production_settings(tmp_path):
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(60),
        DJANGO_ALLOWED_HOSTS="goldpath.example.com",
        GOLDPATH_HOME=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_without_secret_key_refuses_to_start(tmp_path):
    result = _manage("check", DJANGO_DEBUG="0", GOLDPATH_HOME=str(tmp_path))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_production_redirects_pages_to_https_but_not_the_model_gateway(tmp_path):
    """A worker may reach the gateway on an internal http:// GATEWAY_URL: a 301 would fail every model call."""
    code = (
        "from django.test import Client; c = Client(HTTP_HOST='goldpath.example.com'); "
        "print(c.get('/login/').status_code, c.post('/gateway/v1/messages', '{}', "
        "content_type='application/json').status_code)"
    )
    result = _manage(
        "shell",
        "-c",
        code,
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(60),
        DJANGO_ALLOWED_HOSTS="goldpath.example.com",
        GOLDPATH_HOME=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split()[-2:] == ["301", "401"], result.stdout
