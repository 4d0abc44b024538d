"""A tool runtime installed by catalog.runtimes runs inside the sandbox, read-only at /opt/goldpath/tool and first
on PATH: as a root worker (the runtime behind the 0700 GOLDPATH_HOME, the sandbox a per-run uid) and as an
unprivileged worker. Real small packages: semver (npm, a Node script) and tabulate (PyPI, a console script)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from catalog.models import AITool, ToolVersion
from catalog.runners.sandbox import SandboxRunner, private_dir, sandbox_root
from catalog.runtimes import ensure_installed

ROOT = Path(__file__).resolve().parents[2]
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
needs_npm = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a root worker, or setpriv to another user)")
SEMVER = {"kind": "npm", "package": "semver", "version": "7.6.3"}
TABULATE = {"kind": "pypi", "package": "tabulate", "version": "0.9.0"}
# what a tool does in the sandbox: runs its command from PATH, then tries to change its own runtime
PROBE = (
    'echo "path=$PATH"; echo "cmd=$(command -v {cmd})"; {run}; '
    "touch /opt/goldpath/tool/planted 2>/dev/null && echo WROTE || echo read-only; "
    "rm -rf /opt/goldpath/tool/{victim} 2>/dev/null; test -e /opt/goldpath/tool/{victim} && echo intact"
)
PROBES = {
    "npm": PROBE.format(cmd="semver", run="semver 1.2.3 -r '>=1.0.0'", victim="node_modules/semver"),
    "pypi": PROBE.format(cmd="tabulate", run="tabulate --help | head -1", victim="venv/bin/tabulate"),
}


@pytest.fixture
def work():
    """Workdirs live under the sandbox root (a root worker's sandbox uid must reach them)."""
    path = private_dir(sandbox_root(), "rt-", None)
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("runtime-home")
    os.chmod(path, 0o700)
    return path


@pytest.fixture
def home(settings, shared_home) -> Path:
    """A private (0700) GOLDPATH_HOME whose tools folder receives the runtimes (installed once for the module)."""
    settings.GOLDPATH = {**settings.GOLDPATH, "TOOLS_DIR": str(shared_home / "tools")}
    return shared_home


def _runtime(spec: dict[str, str]) -> Path:
    version = ToolVersion(tool=AITool(slug=f"t-{spec['kind']}"), version=spec["version"], runtime=spec)
    path = ensure_installed(version)
    assert path is not None
    return path


def _check(lines: list[str], kind: str) -> None:
    """The probe's output: the runtime first on PATH, its command found there and working, the runtime unchanged."""
    found = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in lines if line.startswith(("path=", "cmd="))}
    assert found["path"].startswith("/opt/goldpath/tool/node_modules/.bin:/opt/goldpath/tool/venv/bin:")
    command = "node_modules/.bin/semver" if kind == "npm" else "venv/bin/tabulate"
    assert found["cmd"] == f"/opt/goldpath/tool/{command}"
    assert ("1.2.3" if kind == "npm" else "Usage: tabulate [options] [FILE ...]") in lines
    assert "read-only" in lines and "WROTE" not in lines and "intact" in lines


@needs_bwrap
@needs_npm
@root_only
@pytest.mark.parametrize("zygote", [True, False], ids=["zygote", "direct"])
@pytest.mark.parametrize("spec", [SEMVER, TABULATE], ids=["npm", "pypi"])
def test_a_runtime_behind_the_private_home_runs_read_only_as_root(home, work, spec, zygote, monkeypatch):
    from catalog.runners import sandbox as sandbox_module

    if not zygote:  # a root worker that starts bwrap directly (no network namespace of its own)
        monkeypatch.setattr(sandbox_module, "own_netns_supported", lambda: False)
    path = _runtime(spec)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700 and home.stat().st_uid == 0
    logs: list[tuple[str, str]] = []
    runner = SandboxRunner(
        ["sh", "-c", PROBES[spec["kind"]]], work, runtime=path, on_log=lambda s, t: logs.append((s, t))
    )
    result = runner.run()
    assert result.status == "succeeded", logs
    _check([t for s, t in logs if s == "stdout"], spec["kind"])
    assert not (path / "planted").exists() and (path / ".goldpath-runtime.json").exists()
    assert result.limits_applied["host_uid"] != 0
    assert result.sandbox["runtime"] == {"mount": "/opt/goldpath/tool", "read_only": True, **spec}
    assert "/opt/goldpath/tool" in result.sandbox["binds"]["ro"]
    # the home was never opened up, and the host's mount table never saw the runtime
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert str(path) not in Path("/proc/self/mountinfo").read_text()


UNPRIVILEGED = """
import json, sys
sys.path.insert(0, sys.argv[1])
from catalog.runners.sandbox import SandboxRunner, private_dir, sandbox_root
work = private_dir(sandbox_root(), "rt-unpriv-", None)
out = {}
for kind, runtime, probe in json.loads(sys.argv[2]):
    logs = []
    r = SandboxRunner(["sh", "-c", probe], work, runtime=runtime, on_log=lambda s, t: logs.append((s, t))).run()
    out[kind] = {"status": r.status, "stdout": [t for s, t in logs if s == "stdout"], "runtime": r.sandbox["runtime"],
                 "host_uid": r.sandbox["profile"]["host_uid"], "memory": r.limits_applied.get("memory_bound")}
print(json.dumps({"work": str(work), "runs": out}))
"""


def _as_nobody(code: str, *args: str) -> dict:
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", code, *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GOLDPATH_SANDBOX_ROOT": ""},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@needs_bwrap
@needs_npm
@root_only
def test_a_runtime_runs_read_only_under_an_unprivileged_worker(settings):
    """The worker is uid 65534: its own 0700 home holds the runtimes, bwrap (as itself) binds them directly."""
    worker_home = private_dir(sandbox_root(), "rt-home-", None)  # somewhere uid 65534 can reach
    try:
        settings.GOLDPATH = {**settings.GOLDPATH, "TOOLS_DIR": str(worker_home / "tools")}
        paths = {spec["kind"]: _runtime(spec) for spec in (SEMVER, TABULATE)}
        for dirpath, dirnames, filenames in os.walk(worker_home):  # the worker's files, as if it installed them
            for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                os.lchown(name, 65534, 65534)
        os.chmod(worker_home, 0o700)
        jobs = [[kind, str(path), PROBES[kind]] for kind, path in paths.items()]
        out = _as_nobody(UNPRIVILEGED, str(ROOT), json.dumps(jobs))
        shutil.rmtree(out["work"], ignore_errors=True)
        for kind, spec in (("npm", SEMVER), ("pypi", TABULATE)):
            run = out["runs"][kind]
            assert run["status"] == "succeeded", run
            _check(run["stdout"], kind)
            assert run["host_uid"] == "the worker's own (not root)" and run["memory"] == "rlimit_as"
            assert run["runtime"] == {"mount": "/opt/goldpath/tool", "read_only": True, **spec}
            assert not (paths[kind] / "planted").exists()
    finally:
        shutil.rmtree(worker_home, ignore_errors=True)


# --- the real agent CLIs: the seeded versions' runtimes (installed here on first use; `.ci/run` installs them) ------

REAL = [
    ("claude-code", ["claude", "--version"], "(Claude Code)"),
    ("codex-cli", ["codex", "--version"], "codex-cli "),
    ("aider", ["/opt/goldpath/tool/venv/bin/python3", "-m", "aider", "--version"], "0."),
]
REAL_UNPRIVILEGED = """
import json, sys
sys.path.insert(0, sys.argv[1])
from catalog.runners.sandbox import SandboxRunner, private_dir, sandbox_root
work = private_dir(sandbox_root(), "rt-real-", None)
out = {}
for name, runtime, argv in json.loads(sys.argv[2]):
    logs = []
    r = SandboxRunner(argv, work, runtime=runtime, memory_mb=1024, on_log=lambda s, t: logs.append((s, t))).run()
    out[name] = {"status": r.status, "stdout": [t for s, t in logs if s == "stdout"]}
print(json.dumps({"work": str(work), "runs": out}))
"""


def _seeded_runtime(slug: str) -> Path:
    from catalog.demo import REAL_AGENTS

    spec = REAL_AGENTS[slug]
    path = ensure_installed(ToolVersion(tool=AITool(slug=slug), version=spec["version"], runtime=spec["runtime"]))
    assert path is not None
    return path


@needs_bwrap
@needs_npm
@root_only
def test_the_real_agent_clis_start_in_the_sandbox_with_a_memory_bound(work):
    """Claude Code (Bun), Codex (Node + Rust) and Aider start with 1024 MB: under the memory cgroup as root (no
    RLIMIT_AS), under RLIMIT_AS as an unprivileged worker."""
    runtimes = {name: _seeded_runtime(name) for name, _, _ in REAL}
    for name, argv, expected in REAL:
        logs: list[tuple[str, str]] = []
        result = SandboxRunner(
            argv, work, runtime=runtimes[name], memory_mb=1024, on_log=lambda s, t, logs=logs: logs.append((s, t))
        ).run()
        assert result.status == "succeeded", (name, logs)
        assert any(expected in t for s, t in logs if s == "stdout"), (name, logs)
        if os.access("/sys/fs/cgroup/memory", os.W_OK):  # the cgroup bounds memory: no address-space limit
            assert result.limits_applied["memory_bound"] == "cgroup_v1_memory"
            assert "rlimit_as_bytes" not in result.limits_applied
    # an unprivileged worker has its runtimes in a folder of its own: a hard-linked copy where uid 65534 reaches
    shared = private_dir(sandbox_root(), "rt-clis-", None)
    os.chmod(shared, 0o755)
    try:
        jobs = []
        for name, argv, _ in REAL:
            subprocess.run(["cp", "-al", str(runtimes[name]), str(shared / name)], check=True)
            jobs.append([name, str(shared / name), argv])
        out = _as_nobody(REAL_UNPRIVILEGED, str(ROOT), json.dumps(jobs))
        shutil.rmtree(out["work"], ignore_errors=True)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    for name, _, expected in REAL:
        run = out["runs"][name]
        assert run["status"] == "succeeded" and any(expected in t for t in run["stdout"]), (name, run)
