"""A test that starts a real worker must be marked `integration`: the collection check in tests/conftest.py
refuses an unmarked one (by fixture, or by its own or a fixture's code), and accepts the same test marked."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import pytest


@pytest.fixture
def celery_worker():  # stands in for the real fixture: the check goes by its name, nothing starts here
    return None


@pytest.fixture
def my_stack():
    if False:
        WorkerProcess()  # noqa: F821 - the check reads the code; this never runs


def test_unmarked_fixture_user(celery_worker):
    pass


def test_unmarked_via_own_fixture(my_stack):
    pass


def test_unmarked_starts_a_server_itself():
    if False:
        WebServer()  # noqa: F821


@pytest.mark.integration
def test_marked(celery_worker, my_stack):
    pass


def test_no_worker():
    pass
"""


# the worker is started from code the collection check does not read: it refuses to start instead
HELPER_PROBE = """
from tests.conftest import WorkerProcess


def start_one():  # code the collection check does not read: the worker refuses to start instead
    worker = WorkerProcess()
    try:
        worker.start(timeout=0.01)
    finally:
        worker.kill()


def test_unmarked_helper_user():
    start_one()
"""


def run_probe(tmp_path, text: str) -> subprocess.CompletedProcess:
    probe = tmp_path / "test_probe.py"
    probe.write_text(text)
    # the repository's pytest configuration, and tests/conftest.py as the plugin of the probe's own top conftest
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.conftest"]\n')
    cmd = [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path)]
    cmd += ["-p", "no:cacheprovider", "-q", str(probe)]
    # the inner run is this test's own: options given to the outer one (PYTEST_ADDOPTS='-m ...') stay outside
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_an_unmarked_test_that_starts_a_worker_fails_collection(tmp_path):
    result = run_probe(tmp_path, PROBE)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "must be marked integration" in out, out
    assert "test_unmarked_fixture_user: uses the celery_worker fixture" in out
    assert "test_unmarked_via_own_fixture: my_stack starts WorkerProcess" in out
    assert "test_unmarked_starts_a_server_itself: test_unmarked_starts_a_server_itself starts WebServer" in out
    assert "test_marked" not in out and "test_no_worker" not in out


def test_the_same_tests_marked_run(tmp_path):
    marked = PROBE.replace("\ndef test_unmarked", "\n@pytest.mark.integration\ndef test_unmarked")
    result = run_probe(tmp_path, marked)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout, result.stdout


def test_a_worker_started_by_a_helper_fails_the_unmarked_test_at_run_time(tmp_path):
    result = run_probe(tmp_path, HELPER_PROBE)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "test_unmarked_helper_user starts a celery worker but is not marked integration" in result.stdout
    assert "not ready" not in result.stdout  # refused before any process started
