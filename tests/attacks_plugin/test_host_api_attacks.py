"""A host whose REST_FRAMEWORK is AllowAny + BasicAuthentication + unpaginated (tests/hostproject) must not open
Goldpath's API: every mounted URL and method, anonymous and as a developer, with hostile query strings. The probe
runs in its own process under the host's settings (host_probe.py) and prints what it found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# by design: POST auth/token/ is open to anyone and answers 400 without credentials
EXPECTED = [{"finding": "api_not_refused", "method": "post", "url": "/goldpath/api/v1/auth/token/", "status": 400}]


def test_no_goldpath_url_is_open_unpaginated_or_a_500_under_an_open_host(tmp_path):
    (tmp_path / "home").mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "GOLDPATH_"))},
        "HOST_DB": str(tmp_path / "host.sqlite3"),
        "HOST_GOLDPATH_HOME": str(tmp_path / "home"),
    }
    proc = subprocess.run(
        [sys.executable, str(HERE / "host_probe.py")], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    done = lines.pop()
    assert done["done"] > 1000 and done["rest_framework"] == ["rest_framework.permissions.AllowAny"]
    assert lines == EXPECTED
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
