"""What a sandbox may see and do: the bwrap command line, the agent's environment and the recorded profile.

What a sandbox may see and do: the bwrap command line, the agent's environment, and the profile description
recorded with each run. Functions of a prepared SandboxRunner (they read its staged scratch dir and sockets);
the runner keeps the lifecycle (prepare, execute, cleanup) and exposes these as methods.

The profile (recorded in the result's `sandbox`), whatever uid the worker has:
- a worker running as root first drops to an unprivileged host uid of its own (`uid`, one per run), so
  even a process that left every namespace would be nobody on the host; bwrap then runs unprivileged;
- inside, the process is uid/gid 1000 in a new user namespace with no capabilities (`--cap-drop ALL`),
  may not create user namespaces (`--disable-userns`), so it cannot remount or mount anything;
- the root is read-only: /usr and a minimal /etc (generated passwd, group, hosts, resolv.conf; the host's
  CA certificates, ld.so cache and alternatives) read-only, /workspace and a private /tmp writable;
- no network but a private loopback; the egress proxy's Unix socket is the only way out;
- a tool runtime, when the run has one, read-only at /opt/goldpath/tool, first on PATH (node_modules/.bin,
  venv/bin); a workspace's tools each at /opt/goldpath/tools/<slug>, next on PATH in the order given; how a root
  worker reaches them behind the 0700 GOLDPATH_HOME is in catalog.runners.sandbox.

Secrets never appear in an argv (anyone on the host can read /proc/<pid>/cmdline): bwrap is started with
the agent's whole environment (no --setenv), which it hands to the agent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from catalog.runners.sandbox_files import ETC_GENERATED, ETC_SHARED, INSIDE_UID, RUNTIME_MARKER

if TYPE_CHECKING:
    from catalog.runners.sandbox import SandboxRunner

SANDBOX_LIB = "/opt/goldpath/lib"  # demo agent copy (PYTHONPATH) and the egress forwarder
EGRESS_DIR = "/opt/goldpath/egress"  # holds the proxy's Unix socket
AGENT_DIR = "/opt/goldpath/agent"  # holds the run's own agent socket
TOOL_DIR = "/opt/goldpath/tool"  # the tool version's runtime (catalog.runtimes), read-only
TOOLS_DIR = "/opt/goldpath/tools"  # a workspace's tools' runtimes, one folder per tool slug, read-only
TOOL_PATH = ("node_modules/.bin", "venv/bin")  # where npm and PyPI runtimes keep their commands


def inside_paths(runner: SandboxRunner) -> tuple[str, str, str]:
    """(lib dir, egress socket, workdir) as the agent sees them."""
    assert runner._tmp is not None and runner._sockets is not None
    if runner.sandboxed:
        return SANDBOX_LIB, f"{EGRESS_DIR}/egress.sock", "/workspace"
    return str(runner._image / "lib"), str(runner._sockets / "egress" / "egress.sock"), str(runner.workdir)


def runtime_items(runner: SandboxRunner) -> list[tuple[Path, str, str]]:
    """(host runtime folder, its path inside, its scratch folder's name) of every runtime the sandbox sees."""
    items = [(runner.runtime, TOOL_DIR, "tool")] if runner.runtime is not None else []
    return items + [(path, f"{TOOLS_DIR}/{slug}", f"tools/{slug}") for slug, path in runner.runtimes.items()]


def runtime_mounts(runner: SandboxRunner) -> list[tuple[str, str]]:
    """(what bwrap binds, where) per runtime: a root worker's scratch folder (bound as root first) or the runtime;
    unsandboxed, the host folder itself is both."""
    if not runner.sandboxed:
        return [(str(host), str(host)) for host, _, _ in runtime_items(runner)]
    return [(runner.bound.get(inside, str(host)), inside) for host, inside, _ in runtime_items(runner)]


def agent_socket_path(runner: SandboxRunner) -> str:
    assert runner._sockets is not None
    return f"{AGENT_DIR}/agent.sock" if runner.sandboxed else str(runner._sockets / "agent" / "agent.sock")


def build_command(runner: SandboxRunner) -> list[str]:
    """The agent argv, `python` mapped to the runtime (-P: never import from the workspace), maybe forwarded."""
    lib, sock, _ = inside_paths(runner)
    cmd = list(runner.argv)
    if cmd and cmd[0] in ("python", "python3"):
        cmd[0:1] = [runner._python(), "-P"]
    if isinstance(runner.network, list) and not runner.own_netns:
        cmd = [runner._python(), "-I", "-S", f"{lib}/goldpath_forwarder.py", str(runner.proxy_port), sock, "--", *cmd]
    return cmd


def build_env(runner: SandboxRunner) -> dict[str, str]:
    """A fresh environment: PATH, HOME=/tmp, PYTHONPATH, proxy vars, agent socket, extras, secrets."""
    lib, _, _ = inside_paths(runner)
    first = [f"{inside}/{part}" for _, inside in runtime_mounts(runner) for part in TOOL_PATH]
    env = {
        "PATH": ":".join([*first, "/usr/local/bin:/usr/bin:/bin"]),
        "HOME": "/tmp" if runner.sandboxed else str(runner._tmp),
        "LANG": "C.UTF-8",
        "PYTHONPATH": lib,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "GOLDPATH_RUN_ID": runner.run_id,
    }
    if isinstance(runner.network, list):
        proxy = f"http://127.0.0.1:{runner.proxy_port}"
        for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
            env[key] = proxy
        env["NO_PROXY"] = env["no_proxy"] = ""
    if runner._agent_socket is not None:
        env["GOLDPATH_AGENT_SOCKET"] = agent_socket_path(runner)
    env.update(runner.env)
    env.update(runner.secrets)
    return env


def root_binds(runner: SandboxRunner) -> list[str]:
    """/usr read-only, the merged-/usr links, and the interpreter's prefix when it lives elsewhere."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin", "lib32", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            args += ["--ro-bind", str(host), str(host)]
    prefix = str(Path(runner._python()).resolve().parent.parent)
    if not prefix.startswith("/usr"):
        args += ["--ro-bind", prefix, prefix]
    return args


def build_args(runner: SandboxRunner) -> list[str]:
    """Full argv: bwrap flags + command (or the bare command when unsandboxed)."""
    cmd = build_command(runner)
    if not runner.sandboxed:
        return cmd
    assert runner._tmp is not None and runner.bwrap
    assert runner._sockets is not None
    if runner.own_netns:  # the network namespace is ours already (see SandboxRunner._spawn)
        args = [runner.bwrap, "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-uts"]
        args += ["--unshare-cgroup-try"]
    else:
        args = [runner.bwrap, "--unshare-all", "--unshare-user"]
    args += ["--uid", str(INSIDE_UID), "--gid", str(INSIDE_UID)]
    args += ["--disable-userns", "--assert-userns-disabled", "--cap-drop", "ALL"]
    args += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
    args += root_binds(runner) + ["--ro-bind", str(runner._image / "etc"), "/etc"]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    args += ["--ro-bind", str(runner._image / "lib"), SANDBOX_LIB]
    if isinstance(runner.network, list) and not runner.own_netns:
        args += ["--ro-bind", str(runner._sockets / "egress"), EGRESS_DIR]
    if runner._agent_socket is not None:
        args += ["--ro-bind", str(runner._sockets / "agent"), AGENT_DIR]
    for source, inside in runtime_mounts(runner):  # a root worker's are bound onto <scratch>/... first (bound)
        args += ["--ro-bind", source, inside]
    args += ["--bind", str(runner.workdir), "/workspace", "--remount-ro", "/", "--chdir", "/workspace"]
    return [*args, "--", *cmd]


def description(runner: SandboxRunner) -> dict[str, object]:
    """What the caller records as the run's sandbox (policy_hash() of this goes in provenance)."""
    forwarded = isinstance(runner.network, list) and not runner.own_netns
    ro = ["/usr", "/etc (minimal)", SANDBOX_LIB] + ([EGRESS_DIR] if forwarded else [])
    ro += [AGENT_DIR] if runner.agent_socket_factory is not None else []
    ro += [inside for _, inside, _ in runtime_items(runner)]
    runtime = {"runtime": runtime_description(runner)} if runner.runtime is not None else {}
    if runner.runtimes:
        runtime["runtimes"] = {
            slug: runtime_description(runner, path, f"{TOOLS_DIR}/{slug}") for slug, path in runner.runtimes.items()
        }
    return {
        "engine": "bubblewrap" if runner.sandboxed else "none",
        "network": runner.network if isinstance(runner.network, list) else "none",
        "binds": {"ro": ro, "rw": ["/workspace"], "tmpfs": ["/tmp"]} if runner.sandboxed else {},
        "namespaces": ["user", "ipc", "pid", "net", "uts", "cgroup", "mount"] if runner.sandboxed else [],
        "profile": {
            "uid_inside": INSIDE_UID,
            "host_uid": "per-run unprivileged uid" if runner.uid is not None else "the worker's own (not root)",
            "capabilities": [],
            "user_namespaces": "disabled",
            "root_filesystem": "read-only",
            "etc": sorted([*ETC_GENERATED, *ETC_SHARED]),
            "python": "-P (never imports from the workspace)",
        }
        if runner.sandboxed
        else {},
        "limits": {
            "time_limit_s": runner.time_limit,
            "memory_mb": runner.memory_mb,
            "max_processes": runner.max_processes,
        },
        **runtime,
    }


def runtime_description(runner: SandboxRunner, path: Path | None = None, inside: str = TOOL_DIR) -> dict[str, object]:
    """Where a runtime (the run's, by default) is mounted and the package it was installed from (its marker,
    catalog.runtimes)."""
    path = path if path is not None else runner.runtime
    assert path is not None
    try:
        spec = json.loads((path / RUNTIME_MARKER).read_text())
    except (OSError, ValueError):
        spec = {}
    found = {
        k: spec[k] for k in ("kind", "package", "version") if isinstance(spec, dict) and isinstance(spec.get(k), str)
    }
    return {"mount": inside if runner.sandboxed else str(path), "read_only": runner.sandboxed, **found}
