"""The session of a local-sandbox workspace: `python -m catalog.workspace_host [--build N] DIR start|stop`.

Started by the template's Terraform (local-exec, no shell: the argv comes from the `goldpath_agent_launch`
variable) on every transition. `start` reads the session spec the build wrote (DIR/.goldpath/session.json, 0600;
removed once read, so the agent token and gateway key live only in this process), detaches (its own session,
output to DIR/.goldpath/session.log) and keeps the workspace agent running inside a bubblewrap sandbox with the
agent runs' hardening (catalog.runners.sandbox): the checkout at /workspace, the chosen tools' runtimes on PATH,
no network but the egress proxy, which lets the agent reach the portal and relays model calls to the gateway.
The agent is restarted with backoff if it ends; a worker or portal restart does not touch it (it reconnects).
`stop` ends the session (SIGTERM to the supervisor, which takes the sandbox down) and waits for it.
Django-free: it runs outside the worker, with what the spec says.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from catalog.runners.gateway_relay import GatewayRoute
from catalog.runners.sandbox import SandboxRunner
from catalog.runners.sandbox_files import UID_BASE, UID_SPAN, is_root, sandbox_root
from catalog.runners.spawn import pid_alive

AGENT_FILE = Path(__file__).resolve().parent / "workspace_agent" / "agent.py"
# allow_network: the public web through the egress proxy (ports 80/443; wildcards reach public addresses only)
PUBLIC_WEB = ["*.com", "*.org", "*.net", "*.io", "*.dev", "*.ai", "*.app", "*.cloud", "*.co", "*.sh"]
STOP_WAIT_S = 10.0
WORKSPACE_TIME_LIMIT_S = 10 * 365 * 86400  # a workspace session has no time limit of its own (autostop ends it)


def state_dir(directory: Path) -> Path:
    return directory / ".goldpath"


def _read_pid(directory: Path) -> int | None:
    try:
        return int((state_dir(directory) / "session.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _is_ours(pid: int, directory: Path) -> bool:
    """The pid file's process is this workspace's supervisor (never signal a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"catalog.workspace_host" in cmdline and str(directory).encode() in cmdline


def stop(directory: Path) -> int:
    pid = _read_pid(directory)
    if pid and pid_alive(pid) and _is_ours(pid, directory):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    (state_dir(directory) / "session.pid").unlink(missing_ok=True)
    (state_dir(directory) / "state").write_text("stopped\n")
    print("workspace session stopped")
    return 0


def workspace_uid(directory: Path) -> int:
    """A root worker runs each workspace as a host uid of its own, the same on every start (the checkout stays its)."""
    digest = hashlib.sha256(str(directory).encode()).digest()
    return UID_BASE + int.from_bytes(digest[:4], "big") % UID_SPAN


def network_patterns(spec: dict, allow_network: bool) -> list[str]:
    """The portal (the agent's link and the model gateway) exactly, and the public web when allowed."""
    patterns = []
    for url in (spec["agent_url"], spec.get("gateway_url") or ""):
        parts = urlsplit(url.replace("ws://", "http://", 1).replace("wss://", "https://", 1))
        if parts.hostname:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            patterns.append(f"{host}:{port}")
    return sorted(set(patterns)) + (PUBLIC_WEB if allow_network else [])


def runner_for(directory: Path, workdir: Path, spec: dict, memory_mb: int, allow_network: bool) -> SandboxRunner:
    env = {
        "GOLDPATH_AGENT_URL": spec["agent_url"],
        "GOLDPATH_WORKSPACE_ID": spec.get("workspace_id", ""),
        "TERM": "xterm-256color",
        **{k: str(v) for k, v in (spec.get("env") or {}).items()},
    }
    secrets = {"GOLDPATH_AGENT_TOKEN": spec["agent_token"], **{k: str(v) for k, v in (spec.get("secrets") or {}).items()}}
    gateway = GatewayRoute.from_url(spec["gateway_url"]) if spec.get("gateway_url") else None
    runtimes = {k: v for k, v in (spec.get("runtimes") or {}).items() if v and Path(v).is_dir()}
    return SandboxRunner(
        ["python3", "-I", "-S", "/opt/goldpath/lib/goldpath_workspace_agent.py"],
        workdir,
        env=env,
        secrets=secrets,
        time_limit=WORKSPACE_TIME_LIMIT_S,
        memory_mb=memory_mb,
        max_processes=1024,
        network=network_patterns(spec, allow_network),
        on_log=lambda stream, text: print(f"[{stream}] {text}", flush=True),
        heartbeat_interval=60.0,
        uid=workspace_uid(directory) if is_root() else None,
        gateway=gateway,
        runtimes=runtimes,
    )


def checkout_for_sandbox(directory: Path) -> Path:
    """The checkout as the sandbox uid can reach it. GOLDPATH_HOME stays 0700, so a root worker's session enters a
    mount namespace of its own and binds the checkout (read-write, nosuid, nodev) onto a folder under the sandbox
    root; the zygotes and bwrap it starts inherit that namespace, the host's mount table never changes."""
    if not is_root():
        return directory / "src"
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    ms_nosuid, ms_nodev, ms_remount, ms_bind, ms_rec, ms_private = 0x2, 0x4, 0x20, 0x1000, 0x4000, 0x40000
    target = sandbox_root() / f"ws-{workspace_uid(directory)}" / "workspace"
    target.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(target.parent, 0o711)
    def check(result: int, what: str) -> None:
        if result != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    check(libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")
    check(libc.mount(None, b"/", None, ms_rec | ms_private, None), "making the mounts private")
    check(libc.mount(str(directory / "src").encode(), str(target).encode(), None, ms_bind, None), "binding")
    flags = ms_remount | ms_bind | ms_nosuid | ms_nodev
    check(libc.mount(None, str(target).encode(), None, flags, None), "remounting nosuid,nodev")
    return target


def supervise(directory: Path, spec: dict, memory_mb: int, allow_network: bool) -> None:
    """Keep the agent's sandbox up until SIGTERM; restart it (with backoff) when it ends."""
    workdir = checkout_for_sandbox(directory)
    stopping = False
    current: list[SandboxRunner] = []

    def on_term(*_args: object) -> None:
        nonlocal stopping
        stopping = True
        for runner in current:
            runner.cancel()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    backoff = 1.0
    while not stopping:
        runner = runner_for(directory, workdir, spec, memory_mb, allow_network)
        current[:] = [runner]
        started = time.monotonic()
        try:
            result = runner.run()
            print(f"workspace agent ended: {result.status} (exit {result.exit_code})", flush=True)
        except Exception as exc:  # noqa: BLE001 - report and retry: the session must not die silently
            print(f"workspace session could not start the agent: {exc}", flush=True)
        if stopping:
            break
        backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, 30.0)
        time.sleep(backoff)
        # the dead agent's start token was spent on its first hello: ask the portal for a new one
        token = reissue_token(spec)
        if token:
            spec = {**spec, "agent_token": token}


def reissue_token(spec: dict) -> str | None:
    """A new start token from the portal for this session (its key is signed for this start only); None when the
    portal is unreachable or the start is over (the agent then keeps the token it had and is refused)."""
    url, key = spec.get("token_url"), spec.get("session_key")
    if not url or not key:
        return None
    request = urllib.request.Request(url, data=b"", method="POST", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:  # noqa: S310 - the portal's own http(s) URL
            token = json.loads(answer.read()).get("token")
    except (OSError, ValueError) as exc:
        print(f"could not get a new agent token: {exc}", flush=True)
        return None
    return token if isinstance(token, str) else None


def start(directory: Path, memory_mb: int, allow_network: bool) -> int:
    stop_quietly(directory)
    spec_path = state_dir(directory) / "session.json"
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, ValueError) as exc:
        print(f"no session spec at {spec_path}: {exc}", file=sys.stderr)
        return 1
    finally:
        spec_path.unlink(missing_ok=True)
    if not (directory / "src").is_dir():
        print(f"no checkout at {directory / 'src'}", file=sys.stderr)
        return 1
    if shutil.which("bwrap") is None:  # say so now: once detached, nobody would read it
        print(
            "bubblewrap (bwrap) is not installed on this worker: a local-sandbox workspace runs in it "
            "(apt-get install bubblewrap)",
            file=sys.stderr,
        )
        return 1
    read_fd, write_fd = os.pipe()
    if os.fork():  # the caller (Terraform) waits only until the session has its pid file
        os.close(write_fd)
        ok = os.read(read_fd, 16)
        print(f"workspace session started (pid {ok.decode().strip()})" if ok else "workspace session failed to start")
        return 0 if ok else 1
    os.close(read_fd)
    os.setsid()
    if os.fork():
        os._exit(0)
    log = os.open(state_dir(directory) / "session.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    (state_dir(directory) / "session.pid").write_text(f"{os.getpid()}\n")
    (state_dir(directory) / "state").write_text("running\n")
    os.write(write_fd, str(os.getpid()).encode())
    os.close(write_fd)
    try:
        supervise(directory, spec, memory_mb, allow_network)
    finally:
        os._exit(0)


def stop_quietly(directory: Path) -> None:
    pid = _read_pid(directory)
    if pid and pid_alive(pid) and _is_ours(pid, directory):
        stop(directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m catalog.workspace_host")
    parser.add_argument("--build", default="", help="the build that started this session (for the record)")
    parser.add_argument("directory", type=Path)
    parser.add_argument("transition", choices=["start", "stop"])
    args = parser.parse_args(argv)
    directory = args.directory.resolve()
    state_dir(directory).mkdir(mode=0o700, parents=True, exist_ok=True)
    if args.transition == "stop":
        return stop(directory)
    memory = os.environ.get("GOLDPATH_WS_MEMORY_MB", "2048")
    return start(
        directory,
        memory_mb=int(memory) if memory.isdigit() else 2048,
        allow_network=os.environ.get("GOLDPATH_WS_ALLOW_NETWORK", "false") == "true",
    )


if __name__ == "__main__":
    sys.exit(main())
