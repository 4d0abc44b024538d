"""Sandbox runner against real bubblewrap: isolation, limits, kill-tree, masking, cancel."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from catalog.runners.sandbox import (
    SandboxRunner,
    SandboxUnavailable,
    expand_argv,
    policy_hash,
    private_dir,
    sandbox_root,
)

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
DEMO = ["python", "-m", "catalog.demo_agent", "--index", "{index}", "--prompt={prompt}"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmp_path():
    """Workdirs live under the sandbox root: a root worker's sandboxes run as an unprivileged uid of their own,
    which must be able to reach them (pytest's own tmp folders are 0700)."""
    path = private_dir(sandbox_root(), "test-", None)
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _run(workdir: Path, prompt: str, index: int = 0, **kw):
    logs: list[tuple[str, str]] = []
    runner = SandboxRunner(expand_argv(DEMO, prompt, index), workdir, on_log=lambda s, t: logs.append((s, t)), **kw)
    return runner, runner.run(), logs


def _procs_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(int(pid))
            except OSError:
                pass
    return found


def test_expand_argv_is_literal():
    assert expand_argv(["claude", "-p", "{prompt}", "--n={index}"], "a $(b) 'c'", 4) == [
        "claude",
        "-p",
        "a $(b) 'c'",
        "--n=4",
    ]


def test_policy_hash_is_canonical():
    assert policy_hash({"a": 1, "b": [1, 2]}) == policy_hash({"b": [1, 2], "a": 1})


@needs_bwrap
def test_demo_agent_edits_only_its_copy_and_runs_differ(tmp_path):
    dirs = [tmp_path / f"run{i}" for i in range(10)]
    for d in dirs:
        d.mkdir()
        (d / "README.md").write_text("hello\n")
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda i: _run(dirs[i], "add a demo line", i)[1], range(10)))
    assert [r.status for r in results] == ["succeeded"] * 10
    contents = {(d / "GOLDPATH_DEMO.md").read_text() for d in dirs}
    assert len(contents) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(d.name for d in dirs)
    r = results[0]
    assert r.sandbox["engine"] == "bubblewrap" and r.sandbox["network"] == "none"
    # the memory cgroup bounds a root worker's sandbox (address-space limits kill Node/Bun/Rust CLIs at start)
    assert 2048 << 20 in (r.limits_applied.get("cgroup_v1_memory"), r.limits_applied.get("rlimit_as_bytes"))
    assert len(r.policy_hash) == 64


@needs_bwrap
def test_write_outside_workspace_fails(tmp_path):
    target = tmp_path / "outside.txt"
    work = tmp_path / "w"
    work.mkdir()
    logs: list[tuple[str, str]] = []
    res = SandboxRunner(
        ["sh", "-c", f"echo x > {target} || echo blocked; echo y > /usr/pwned || echo ro; touch ok"],
        work,
        on_log=lambda s, t: logs.append((s, t)),
    ).run()
    assert res.status == "succeeded"
    assert not target.exists() and not Path("/usr/pwned").exists()
    assert ("stdout", "ro") in logs and ("stdout", "blocked") in logs and (work / "ok").exists()


@needs_bwrap
def test_shell_metacharacters_are_literal(tmp_path):
    marker = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    _, res, _ = _run(tmp_path, f"$(touch {marker}) `touch {marker}`; touch {marker}")
    assert res.status == "succeeded"
    assert not marker.exists()
    prompt = f"$(touch {marker}) done"
    logs: list[tuple[str, str]] = []
    SandboxRunner(
        expand_argv(["printf", "%s\\n", "{prompt}"], prompt), tmp_path, on_log=lambda s, t: logs.append((s, t))
    ).run()
    assert ("stdout", prompt) in logs and not marker.exists()


@needs_bwrap
def test_fail_prompt_reports_exit_code(tmp_path):
    _, res, logs = _run(tmp_path, "please [fail]")
    assert res.status == "failed" and res.exit_code == 1
    assert ("stderr", "demo agent: asked to fail") in logs


@needs_bwrap
def test_hang_times_out_and_kills_tree(tmp_path):
    marker = f"hang-{uuid.uuid4().hex}"
    t0 = time.monotonic()
    _, res, _ = _run(tmp_path, f"[hang] {marker}", time_limit=2)
    assert res.status == "timed_out"
    assert time.monotonic() - t0 < 10
    time.sleep(0.3)
    assert _procs_with(marker) == []


@needs_bwrap
def test_network_none_is_denied_and_logged(tmp_path):
    _, res, logs = _run(tmp_path, "[network]")
    assert res.status == "failed" and res.exit_code == 3
    assert any("direct connection to example.com:443 denied" in t for _, t in logs)


@needs_bwrap
def test_network_allowlist_goes_through_proxy_which_denies(tmp_path):
    _, res, logs = _run(tmp_path, "[network]", network=["api.anthropic.com", "*.github.com"])
    assert res.status == "failed"
    assert {"host": "example.com", "port": 443, "allowed": False} in [
        {k: e[k] for k in ("host", "port", "allowed")} for e in res.egress
    ]
    assert ("egress", "egress DENIED: example.com:443") in logs
    assert any("403 Forbidden" in t for _, t in logs)


@needs_bwrap
def test_secret_is_masked(tmp_path):
    secret = "sk-test-" + uuid.uuid4().hex
    logs: list[tuple[str, str]] = []
    res = SandboxRunner(
        ["sh", "-c", 'echo "key=$VENDOR_KEY"; echo "$VENDOR_KEY" >&2'],
        tmp_path,
        secrets={"VENDOR_KEY": secret},
        on_log=lambda s, t: logs.append((s, t)),
    ).run()
    assert res.status == "succeeded"
    assert ("stdout", "key=********") in logs and ("stderr", "********") in logs
    assert all(secret not in t for _, t in logs)
    assert secret not in str(res.as_dict())


@needs_bwrap
def test_cancel_kills_the_run(tmp_path):
    marker = f"cancel-{uuid.uuid4().hex}"
    runner = SandboxRunner(expand_argv(DEMO, f"[hang] {marker}", 0), tmp_path, time_limit=30)
    threading.Timer(1.0, runner.cancel).start()
    res = runner.run()
    assert res.status == "canceled"
    time.sleep(0.3)
    assert _procs_with(marker) == []


def test_missing_bwrap_raises_clear_error(tmp_path):
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        SandboxRunner(["true"], tmp_path, bwrap="").run()


def test_unsandboxed_when_allowed(tmp_path):
    logs: list[tuple[str, str]] = []
    res = SandboxRunner(
        expand_argv(DEMO, "hi", 2), tmp_path, bwrap="", allow_unsandboxed=True, on_log=lambda s, t: logs.append((s, t))
    ).run()
    assert res.status == "succeeded" and res.sandbox["engine"] == "none"
    assert (tmp_path / "GOLDPATH_DEMO.md").exists()
    assert any("UNSANDBOXED" in t for _, t in logs)


def test_unsandboxed_hang_kills_tree(tmp_path):
    marker = f"uhang-{uuid.uuid4().hex}"
    res = SandboxRunner(
        expand_argv(DEMO, f"[hang] {marker}", 0), tmp_path, bwrap="", allow_unsandboxed=True, time_limit=1.5
    ).run()
    assert res.status == "timed_out"
    time.sleep(0.3)
    assert _procs_with(marker) == []


@needs_bwrap
def test_secrets_reach_the_agent_but_no_argv(tmp_path):
    secret = "sk-argv-" + uuid.uuid4().hex
    logs: list[tuple[str, str]] = []
    runner = SandboxRunner(
        ["sh", "-c", 'test -n "$VENDOR_KEY" && echo has-key; echo ready; sleep 30'],
        tmp_path,
        secrets={"VENDOR_KEY": secret},
        time_limit=30,
        on_log=lambda s, t: logs.append((s, t)),
    )
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(runner.run)
        deadline = time.monotonic() + 10
        while ("stdout", "ready") not in logs and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ("stdout", "has-key") in logs
        assert _procs_with(secret) == []  # /proc/<pid>/cmdline is readable by everyone on the host
        runner.cancel()
        assert future.result().status == "canceled"


@needs_bwrap
def test_scratch_dir_lives_under_its_root_and_goes_away(tmp_path):
    root = tmp_path / "home" / "agent-runs" / "run-1"
    seen: list[bool] = []
    runner = SandboxRunner(
        ["sh", "-c", "echo hi"],
        tmp_path,
        scratch_root=root,
        on_log=lambda s, t: seen.append((root / f"sbx-{runner.run_id}").is_dir()),
    )
    res = runner.run()
    assert res.status == "succeeded" and seen and all(seen)
    assert list(root.iterdir()) == []


@needs_bwrap
def test_long_scratch_path_keeps_sockets_short(tmp_path):
    from catalog.runners.sandbox import short_socket_dir

    root = tmp_path / ("deep-" * 20)
    runner, res, logs = _run(tmp_path, "[network]", network=[], scratch_root=root)
    assert ("egress", "egress DENIED: example.com:443") in logs
    assert not short_socket_dir(runner.run_id).exists() and list(root.iterdir()) == []


@needs_bwrap
def test_agent_reports_through_its_own_socket(tmp_path):
    from catalog.runners.agentsock import ENVIRON_KEY, AgentSocket

    calls: list[tuple[str, str, str, bytes]] = []

    def app(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        calls.append((environ["PATH_INFO"], environ.get("HTTP_AUTHORIZATION", ""), environ[ENVIRON_KEY], body))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    paths = [r"/api/v1/agent-runs/7/(progress|result)/"]
    factory = lambda path: AgentSocket(path, app, run_id="7", paths=paths)  # noqa: E731
    runner, res, logs = _run(
        tmp_path,
        "hello",
        1,
        secrets={"GOLDPATH_AGENT_TOKEN": "gpa_secret"},
        env={"GOLDPATH_AGENT_API": "/api/v1/agent-runs/7/"},
        agent_socket=factory,
    )
    assert res.status == "succeeded", logs
    assert [(c[0], c[1], c[2]) for c in calls] == [
        ("/api/v1/agent-runs/7/progress/", "Agent gpa_secret", "7"),
        ("/api/v1/agent-runs/7/result/", "Agent gpa_secret", "7"),
    ]
    assert b'"files": ["GOLDPATH_DEMO.md"]' in calls[1][3]
    assert ("stdout", "[demo-agent] reported result: HTTP 200") in logs
    assert "/opt/goldpath/agent" in res.sandbox["binds"]["ro"]  # the socket is reachable, its folder not writable


# --- a hostile agent against the sandbox profile (issue: agent runs that hold against a hostile developer) ---

ESCAPE = r"""
set +e
id -u > uid.txt
grep CapEff /proc/self/status | tr -d '\t' > caps.txt
mount -o remount,bind,rw /usr 2>/dev/null && echo REMOUNTED >> escape.txt
mount -o remount,bind,rw /opt/goldpath/lib 2>/dev/null && echo REMOUNTED_LIB >> escape.txt
unshare -U -r true 2>/dev/null && echo USERNS >> escape.txt
touch /pwned 2>/dev/null && echo ROOT_WRITABLE >> escape.txt
touch /etc/pwned 2>/dev/null && echo ETC_WRITABLE >> escape.txt
echo x > /opt/goldpath/lib/goldpath_forwarder.py 2>/dev/null && echo LIB_WRITABLE >> escape.txt
test -e /etc/shadow && echo SHADOW_VISIBLE >> escape.txt
test -e /etc/gitconfig && echo HOST_ETC_VISIBLE >> escape.txt
ls /etc > etc.txt
touch /workspace/made-inside
echo done > finished.txt
"""


def _escape_findings(work: Path) -> dict[str, str]:
    return {name: (work / name).read_text().strip() for name in ("uid.txt", "caps.txt", "etc.txt", "finished.txt")} | {
        "escape": (work / "escape.txt").read_text().strip() if (work / "escape.txt").exists() else ""
    }


@needs_bwrap
def test_hostile_agent_has_no_privilege_and_cannot_remount(tmp_path):
    """Attack 1: as root, bwrap's namespace used to map uid 0 to host root with every capability, so an agent
    could remount a read-only bind writable and plant a .pth file that the next host Python start ran as root."""
    res = SandboxRunner(["sh", "-c", ESCAPE], tmp_path, network=[]).run()
    found = _escape_findings(tmp_path)
    assert res.status == "succeeded" and found["finished.txt"] == "done"
    assert found["escape"] == ""  # no remount, no user namespace, nothing writable outside /workspace and /tmp
    assert found["uid.txt"] == "1000" and found["caps.txt"] == "CapEff:0000000000000000"
    assert "passwd" in found["etc.txt"] and "shadow" not in found["etc.txt"] and "gitconfig" not in found["etc.txt"]
    made = (tmp_path / "made-inside").stat()
    if os.geteuid() == 0:  # a root worker's sandbox is an unprivileged uid on the host too
        assert made.st_uid != 0 and made.st_uid == res.limits_applied["host_uid"]
    assert res.sandbox["profile"]["capabilities"] == [] and res.sandbox["profile"]["user_namespaces"] == "disabled"


@needs_bwrap
def test_the_remount_attack_plants_nothing_in_the_host_python(tmp_path):
    """The exact attack from the report: remount the interpreter's prefix writable and add a .pth file."""
    import sysconfig

    site = sysconfig.get_paths()["purelib"]
    pth = Path(site) / f"gp-{uuid.uuid4().hex}.pth"
    attack = f"mount -o remount,bind,rw /usr; echo 'import os; os.system(\"id > /tmp/x\")' > {pth}; true"
    res = SandboxRunner(["sh", "-c", attack], tmp_path).run()
    assert res.status == "succeeded"
    assert not pth.exists()


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a worker as another user")
def test_hostile_agent_under_an_unprivileged_worker(tmp_path):
    """The same profile when the worker itself is an unprivileged user (uid 65534 here)."""
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]);"
        "from catalog.runners.sandbox import SandboxRunner, private_dir, sandbox_root;"
        "w = private_dir(sandbox_root(), 'unpriv-', None);"
        "r = SandboxRunner(['sh', '-c', sys.argv[2]], w, network=[]).run();"
        "print(json.dumps({'status': r.status, 'work': str(w), 'profile': r.sandbox['profile']}))"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GOLDPATH_SANDBOX_ROOT": ""}
    proc = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            code,
            str(ROOT),
            ESCAPE,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    import json

    out = json.loads(proc.stdout.strip().splitlines()[-1])
    work = Path(out["work"])
    try:
        found = _escape_findings(work)
        assert out["status"] == "succeeded" and found["finished.txt"] == "done"
        assert found["escape"] == "" and found["uid.txt"] == "1000"
        assert found["caps.txt"] == "CapEff:0000000000000000"
        assert out["profile"]["host_uid"] == "the worker's own (not root)"
    finally:
        shutil.rmtree(work, ignore_errors=True)


@needs_bwrap
def test_python_launcher_never_imports_from_the_workspace(tmp_path):
    """A repository's own catalog/demo_agent/__main__.py must not replace the demo agent (`python -m`)."""
    fake = tmp_path / "catalog" / "demo_agent"
    fake.mkdir(parents=True)
    (tmp_path / "catalog" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text("print('REPOSITORY CODE RAN')\n")
    _, res, logs = _run(tmp_path, "hello", 1)
    assert res.status == "succeeded"
    assert all("REPOSITORY CODE RAN" not in t for _, t in logs)
    assert ("stdout", "[demo-agent] done") in logs


@pytest.mark.skipif(not os.access("/sys/fs/cgroup/pids", os.W_OK), reason="v1 cgroups are not writable here")
def test_cgroups_of_zygotes_whose_worker_died_are_swept():
    from catalog.runners import spawn

    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs
    stale = Path("/sys/fs/cgroup/pids") / f"goldpath-z{gone.pid}-0-test"
    live = Path("/sys/fs/cgroup/pids") / f"goldpath-z{os.getpid()}-0-test"
    stale.mkdir()
    live.mkdir()
    try:
        spawn._SWEPT.clear()
        assert spawn.sweep_stale_cgroups() >= 1
        assert not stale.exists() and live.exists()
    finally:
        for path in (stale, live):
            if path.exists():
                path.rmdir()


# --- the zygote path (a root worker's warm starts) and failures around it ---------------------------------

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="zygotes are a root worker's")


def _zygotes_of_this_process() -> list[int]:
    mine = []
    for pid in _procs_with("job = json.loads(data)"):
        try:
            if int(Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[1]) == os.getpid():
                mine.append(pid)
        except (OSError, IndexError, ValueError):
            pass
    return mine


@needs_bwrap
def test_nothing_but_stdio_is_open_in_a_sandbox(tmp_path):
    code = "import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))"
    logs: list[tuple[str, str]] = []
    res = SandboxRunner(["python3", "-c", code], tmp_path, network=[], on_log=lambda s, t: logs.append((s, t))).run()
    assert res.status == "succeeded"
    assert ("stdout", "[0, 1, 2, 3]") in logs  # stdio and listdir's own: no pipe of the zygote, no socket


@needs_bwrap
@root_only
def test_a_failure_before_the_command_is_handed_over_leaves_no_zygote(tmp_path):
    with pytest.raises(TypeError):
        SandboxRunner(["true"], tmp_path, env={"A": b"not text"}).run()
    time.sleep(1.0)  # the pool's refill settles
    assert len(_zygotes_of_this_process()) <= 1  # the one warm zygote of the pool, not the failed run's


@needs_bwrap
def test_a_sandbox_never_outlives_its_runner(tmp_path, monkeypatch):
    """Without a zygote (unprivileged workers), --die-with-parent follows the worker's thread: an error in the
    runner (its heartbeat hit the database) used to leave the sandbox running without a time limit."""
    from catalog.runners import sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module, "own_netns_supported", lambda: False)
    marker = f"outlive-{uuid.uuid4().hex}"
    beats = []

    def beat():
        beats.append(1)
        if len(beats) > 1:
            raise RuntimeError("database gone")

    runner = SandboxRunner(["sh", "-c", f"sleep 77; : {marker}"], tmp_path, heartbeat=beat, heartbeat_interval=0.2)
    with pytest.raises(RuntimeError):
        runner.run()
    time.sleep(0.5)
    assert _procs_with(marker) == []


@needs_bwrap
@root_only
@pytest.mark.skipif(not os.access("/sys/fs/cgroup/pids", os.W_OK), reason="v1 cgroups are not writable here")
def test_zygotes_of_other_limits_leave_no_cgroups(tmp_path):
    def mine() -> set[str]:
        return {p.name for p in Path("/sys/fs/cgroup/pids").glob(f"goldpath-z{os.getpid()}-*")}

    before = mine()
    for i, memory in enumerate((100, 200, 100, 200)):
        work = tmp_path / f"w{i}"
        work.mkdir()
        assert SandboxRunner(["true"], work, memory_mb=memory).run().status == "succeeded"
    time.sleep(1.0)
    assert len(mine() - before) <= 1  # at most the pool's warm zygote
