"""The `goldpath` console script, driven as a subprocess against a running portal.

`portal` is pytest-django's live server (a real HTTP server on the test database); `goldpath(...)` runs the
INSTALLED console script (the venv's `bin/goldpath`, sys.executable's sibling) with its own config folder and
a clean environment, and returns what a user would see: exit code, stdout, stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.factories import PASSWORD

GOLDPATH = Path(sys.executable).parent / "goldpath"
# variables of the developer's own shell that would change what the CLI does
SCRUBBED = ("GOLDPATH_URL", "GOLDPATH_TOKEN", "XDG_CONFIG_HOME", "COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self):
        import json

        return json.loads(self.out)

    def __repr__(self) -> str:  # shown by pytest when an assert fails
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


class Cli:
    """Runs `goldpath ARGS` as the user whose config folder is `home/config`."""

    def __init__(self, home: Path, url: str) -> None:
        self.home = home
        self.url = url
        self.config_dir = home / "config" / "goldpath"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        env.update({"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / "config"), "COLUMNS": "200"})
        env.update(extra or {})
        return env

    def __call__(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 120):
        proc = subprocess.run(
            [str(GOLDPATH), *args],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=self.env(env),
            timeout=timeout,
            cwd=self.home,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def login(self, username: str, password: str = PASSWORD) -> Result:
        result = self("login", "--url", self.url, "--username", username, "--password-stdin", stdin=password + "\n")
        assert result.code == 0, result
        return result


@pytest.fixture(scope="session", autouse=True)
def _installed() -> None:
    if not GOLDPATH.exists():
        pytest.fail(f"{GOLDPATH} is missing: install the package (`make` or `pip install -e .[dev]`).")


@pytest.fixture
def portal(transactional_db, live_server) -> str:
    """The portal's base URL (pytest-django's live server, reading the test database)."""
    return live_server.url


@pytest.fixture
def goldpath(portal, tmp_path) -> Cli:
    home = tmp_path / "user"
    home.mkdir()
    return Cli(home, portal)


@pytest.fixture
def other_user(portal, tmp_path) -> Cli:
    """A second person at another terminal, with a config folder of their own."""
    home = tmp_path / "other"
    home.mkdir()
    return Cli(home, portal)
