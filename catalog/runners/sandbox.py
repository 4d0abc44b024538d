"""Run one agent process in a bubblewrap sandbox that holds no privilege, with limits, masked logs and egress.

Steps (AWX BaseTask style): prepare() stages a private scratch dir (demo agent copy, forwarder, a minimal
/etc, egress socket, the run's agent socket; catalog.runners.sandbox_stage), build_args()/build_env() make the
bwrap argv and a fresh environment, execute() streams output and enforces the time limit, collect() returns a
SandboxResult.

The profile (bwrap argv, environment, recorded description: what the sandbox may see and do) is built in
catalog.runners.sandbox_profile; secrets reach the agent through its environment, never an argv.

A tool runtime (catalog.runtimes, under GOLDPATH_HOME which stays 0700) is seen read-only at /opt/goldpath/tool
(`runtime`: an agent run's one tool); a workspace's several tools (`runtimes`: slug -> folder) each at
/opt/goldpath/tools/<slug>. An unprivileged worker's bwrap binds them directly (the worker's own folders). A root
worker's bwrap runs as the run's uid, which cannot traverse the home, and bwrap resolves every source by path
(`--ro-bind-fd` too: it realpath()s /proc/self/fd/N), so the process that becomes bwrap first binds each runtime,
still as root and in a mount namespace of its own, onto an empty folder of the run's scratch dir (`tool`,
`tools/<slug>`); bwrap binds those folders (catalog.runners.spawn.ro_binds). No permission on the home changes
and the host's mounts stay as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from catalog.masking import mask_values
from catalog.runners import sandbox_profile, sandbox_stage
from catalog.runners.agentsock import AgentSocket
from catalog.runners.egress import EgressProxy, GatewayRoute
from catalog.runners.sandbox_files import (  # noqa: F401 - re-exported: the runner's callers use these names
    SandboxUnavailable,
    chown_tree,
    is_root,
    private_dir,
    sandbox_image,
    sandbox_root,
    sandbox_uid,
    short_socket_dir,
)
from catalog.runners.sandbox_limits import Limits
from catalog.runners.spawn import Zygote, own_netns_supported, take_zygote

RUNTIME_SLUG = re.compile(r"[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?")  # catalog.runtimes' tool slugs: one path component


def _drain(fd: int) -> None:
    """Empty the (non-blocking) wake pipe before a wait."""
    try:
        while os.read(fd, 64):
            pass
    except OSError:
        pass


def expand_argv(template: list[str], prompt: str, index: int = 0) -> list[str]:
    """Replace {prompt} and {index} inside argv elements; no shell ever sees the result."""
    return [part.replace("{index}", str(index)).replace("{prompt}", prompt) for part in template]


def policy_hash(policy: dict) -> str:
    """sha256 of the canonical JSON of a sandbox policy (for provenance records)."""
    return hashlib.sha256(json.dumps(policy, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SandboxResult:
    status: str  # succeeded / failed / timed_out / canceled
    exit_code: int | None
    started: datetime
    finished: datetime
    limits_applied: dict[str, object]
    sandbox: dict[str, object]
    egress: list[dict[str, object]] = field(default_factory=list)

    @property
    def policy_hash(self) -> str:
        return policy_hash(self.sandbox)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["started"], data["finished"] = self.started.isoformat(), self.finished.isoformat()
        data["policy_hash"] = self.policy_hash
        return data


class SandboxRunner:
    """One agent process; create, call run() (blocking), cancel() from another thread."""

    def __init__(
        self,
        argv: list[str],
        workdir: str | os.PathLike[str],
        *,
        env: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
        time_limit: float = 600,
        memory_mb: int | None = 2048,
        max_processes: int | None = 256,
        network: str | list[str] = "none",
        on_log: Callable[[str, str], None] | None = None,
        heartbeat: Callable[[], None] | None = None,
        heartbeat_interval: float = 5.0,
        allow_unsandboxed: bool = False,
        bwrap: str | None = None,
        proxy_port: int = 3128,
        scratch_root: str | os.PathLike[str] | None = None,
        root: str | os.PathLike[str] | None = None,
        agent_socket: Callable[[Path], AgentSocket] | None = None,
        uid: int | None = None,
        python: str = "",
        capture_stdout: int = 0,
        masked: list[str] | tuple[str, ...] = (),
        runtime: str | os.PathLike[str] | None = None,
        gateway: GatewayRoute | None = None,
        runtimes: dict[str, str | os.PathLike[str]] | None = None,
    ) -> None:
        self.run_id = uuid.uuid4().hex[:12]
        self.argv = list(argv)
        self.workdir = Path(workdir).resolve()
        self.env = dict(env or {})
        self.secrets = dict(secrets or {})
        self.masked = [*self.secrets.values(), *masked]  # secrets, and values this process must not print either
        self.time_limit = time_limit
        self.memory_mb = memory_mb
        self.max_processes = max_processes
        self.network = network
        self.on_log = on_log or (lambda stream, text: None)
        self.heartbeat = heartbeat or (lambda: None)
        self.heartbeat_interval = heartbeat_interval
        self.allow_unsandboxed = allow_unsandboxed
        self.bwrap = bwrap if bwrap is not None else shutil.which("bwrap")
        self.proxy_port = proxy_port
        self.scratch_root = Path(scratch_root) if scratch_root else None
        self.root = root  # the sandbox root (sandbox_root()'s default when None): the shared image lives there
        self.agent_socket_factory = agent_socket
        # the host uid the sandbox runs as: only a root worker changes uid (others run bwrap as themselves)
        self.uid = (uid if uid is not None else sandbox_uid()) if is_root() and self.bwrap else None
        self.python = python
        self.runtime = Path(runtime).resolve() if runtime else None  # a tool runtime's folder (catalog.runtimes)
        self.runtimes: dict[str, Path] = {}  # a workspace's tools: slug -> runtime folder, each its own mount
        for slug, path in (runtimes or {}).items():
            if not isinstance(slug, str) or not RUNTIME_SLUG.fullmatch(slug):
                raise ValueError(f"a runtime's name must be a tool slug, not {str(slug)[:60]!r}")
            self.runtimes[slug] = Path(path).resolve()
        self.bound: dict[str, str] = {}  # a root worker's runtime mounts: inside path -> scratch folder bwrap binds
        self.gateway = gateway  # the egress proxy relays the sandbox's model calls there (catalog.runners.egress)
        # a root worker makes the sandbox's network namespace itself and listens on its loopback proxy port:
        # no forwarder process inside (others: a forwarder relays to the proxy's Unix socket)
        self.own_netns = bool(self.bwrap) and own_netns_supported()
        self.limits = Limits(
            self.run_id, time_limit=time_limit, memory_mb=memory_mb, max_processes=max_processes, uid=self.uid
        )
        self._zygote: Zygote | None = None
        self.capture_stdout = capture_stdout  # > 0: keep up to this many bytes of stdout, unlogged
        self.stdout = bytearray()
        self.stdout_truncated = False
        self.egress_log: list[dict[str, object]] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._canceled = threading.Event()
        self._tmp: Path | None = None
        self._image = Path()
        self._sockets: Path | None = None
        self._proxy: EgressProxy | None = None
        self._agent_socket: AgentSocket | None = None
        self._log_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # cancel() wakes execute() at once

    # -- helpers -----------------------------------------------------------------------------
    @property
    def sandboxed(self) -> bool:
        return bool(self.bwrap)

    def mask(self, text: str) -> str:
        return mask_values(text, self.masked)

    def _log(self, stream: str, text: str) -> None:
        with self._log_lock:
            self.on_log(stream, self.mask(text))

    def _python(self) -> str:
        """The interpreter for `python`/`python3` (stdlib only): one under /usr, which every sandbox sees."""
        if self.python:
            return self.python
        base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
        if base.exists() and (not self.sandboxed or str(base.resolve()).startswith("/usr/")):
            return str(base)
        for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
            if os.path.exists(candidate):
                return candidate
        return os.path.realpath(sys.executable)

    def on_connection(self, host: str, port: int, allowed: bool) -> None:
        self.egress_log.append({"host": host, "port": port, "allowed": allowed, "at": _now().isoformat()})
        self._log("egress", f"egress {'allowed' if allowed else 'DENIED'}: {host}:{port}")

    # -- steps: prepare stages the run (catalog.runners.sandbox_stage) ---------------------------
    prepare = sandbox_stage.prepare

    # -- the profile: bwrap argv, environment, recorded description (functions of the runner, used as methods) ---
    build_command = sandbox_profile.build_command
    build_env = sandbox_profile.build_env
    build_args = sandbox_profile.build_args
    description = sandbox_profile.description

    def _spawn(self, args: list[str]) -> subprocess.Popen[bytes]:
        """Start the process: as root through a zygote (catalog.runners.spawn: own network namespace and cgroups,
        made ahead of time), otherwise bwrap directly."""
        _, _, cwd = sandbox_profile.inside_paths(self)

        def popen() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=self.limits.preexec,
                env=self.build_env(),
                cwd=None if self.sandboxed else cwd,
            )

        if not self.own_netns:
            self.limits.make_cgroups()
            return popen()
        zygote = self._zygote = take_zygote(self._python(), self.proxy_port, self.limits.cgroup_values)
        try:
            self.limits.adopt(zygote)
            zygote.go(args, self.build_env(), self.limits.rlimits(), self.uid, self.limits.binds)
        except BaseException:
            zygote.discard()  # never leave a root zygote waiting, nor its cgroups
            raise
        assert zygote.proc is not None and zygote.listener is not None
        if isinstance(self.network, list) and self._proxy is not None:
            self._proxy.start(zygote.listener)  # the proxy serves the sandbox's own loopback port
        else:
            zygote.listener.close()  # no network: nothing listens, a connection is refused
        return zygote.proc

    def _pump(self, stream: str, pipe) -> None:
        if stream == "stdout" and self.capture_stdout:
            for chunk in iter(lambda: pipe.read1(65536), b""):
                room = self.capture_stdout - len(self.stdout)
                self.stdout += chunk[: max(room, 0)]
                self.stdout_truncated |= len(chunk) > room
            pipe.close()
            return
        for raw in iter(pipe.readline, b""):
            self._log(stream, raw.decode("utf-8", "replace").rstrip("\n"))
        pipe.close()

    def execute(self) -> tuple[str, int | None]:
        """Start the process, stream lines, heartbeat, enforce the time limit."""
        args = self.build_args()
        self._log(
            "system",
            self.mask(
                f"launching ({'bubblewrap' if self.sandboxed else 'UNSANDBOXED'}): {json.dumps(self.build_command())}"
            ),
        )
        self._proc = self._spawn(args)
        self.limits.record()  # after the cgroups are made: a memory cgroup replaces RLIMIT_AS
        pumps = [
            threading.Thread(target=self._pump, args=(name, pipe), daemon=True)
            for name, pipe in (("stdout", self._proc.stdout), ("stderr", self._proc.stderr))
        ]
        for t in pumps:
            t.start()
        deadline = time.monotonic() + self.time_limit
        next_beat = time.monotonic()
        status: str | None = None
        exited = os.pidfd_open(self._proc.pid)  # readable the moment the process ends: no polling delay
        try:
            while self._proc.poll() is None:
                now = time.monotonic()
                if self._canceled.is_set():
                    status = "canceled"
                elif now >= deadline:
                    status = "timed_out"
                if status:
                    self._log("system", f"{status}: killing the process tree")
                    self.limits.kill_tree(self._proc)
                    break
                if now >= next_beat:
                    self.heartbeat()
                    next_beat = now + self.heartbeat_interval
                wait = max(0.0, min(deadline, next_beat) - time.monotonic())
                _drain(self._wake_r)
                select.select([exited, self._wake_r], [], [], min(wait, 1.0))
        finally:
            os.close(exited)
        code = self._proc.wait()
        for t in pumps:
            t.join(timeout=2)
        if status is None:
            if self.limits.pids():  # the agent exited but left children behind
                self.limits.kill_tree(self._proc)
            status = "succeeded" if code == 0 else "failed"
        return status, code

    def cleanup(self) -> None:
        if self._proc is not None and self._proc.poll() is None:  # execute() did not finish: no sandbox outlives it
            self.limits.kill_tree(self._proc)
        if self._zygote is not None:
            if not self._zygote.started:
                self._zygote.discard()
            self._zygote.released.set()
        if self._proxy:
            self._proxy.stop()
        if self._agent_socket:
            self._agent_socket.stop()
        self.limits.remove()
        for path in {self._tmp, self._sockets} - {None}:
            shutil.rmtree(path, ignore_errors=True)
        with self._log_lock:
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
            self._wake_r = self._wake_w = -1

    def run(self) -> SandboxResult:
        """prepare -> build -> execute -> collect; always cleans up."""
        started = _now()
        try:
            self.prepare()
            status, code = self.execute()
        finally:
            self.cleanup()
        return SandboxResult(
            status=status,
            exit_code=code,
            started=started,
            finished=_now(),
            limits_applied=dict(self.limits.applied),
            sandbox=self.description(),
            egress=list(self.egress_log),
        )

    def cancel(self) -> None:
        """Ask run() to kill the tree; the result's status becomes `canceled`."""
        self._canceled.set()
        with self._log_lock:
            if self._wake_w >= 0:
                try:
                    os.write(self._wake_w, b"x")
                except OSError:
                    pass
