"""Run one agent process in a bubblewrap sandbox with limits, masked logs and optional egress.

Steps (AWX BaseTask style): prepare() stages a private scratch dir under the caller's
`scratch_root` (demo agent copy, egress socket, the run's agent socket, forwarder),
build_args()/build_env() make the bwrap argv and a fresh environment, execute() streams output
and enforces the time limit, collect() returns a SandboxResult.

Secrets never appear in an argv (anyone on the host can read /proc/<pid>/cmdline): bwrap is
started with the agent's whole environment (no --setenv), which it hands to the agent.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from catalog.runners.agentsock import AgentSocket
from catalog.runners.egress import EgressProxy

MASK = "********"
SANDBOX_LIB = "/opt/goldpath/lib"  # demo agent copy (PYTHONPATH) and the egress forwarder
EGRESS_DIR = "/opt/goldpath/egress"  # bound read-write: holds the proxy's Unix socket
AGENT_DIR = "/opt/goldpath/agent"  # bound read-write: holds the run's own agent socket
SOCKET_PATH_MAX = 100  # AF_UNIX paths are limited to 107 bytes; longer scratch dirs use a short one
UNSANDBOXED_HINT = (
    "bubblewrap (bwrap) is not installed: install it (apt-get install bubblewrap) "
    "or set GOLDPATH_ALLOW_UNSANDBOXED=1 to run agents without a sandbox"
)
CGROUP_ROOT = Path("/sys/fs/cgroup")

# Runs inside the sandbox: listens on 127.0.0.1:<port>, forwards each connection to the
# egress proxy's Unix socket, then execs nothing -- it runs the agent as a child and exits
# with its code, so the agent sees an ordinary HTTP(S) proxy on loopback.
FORWARDER = r"""
import os, select, socket, subprocess, sys, threading
port, sock_path, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[4:]
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(64)
def pipe(a, b):
    try:
        while True:
            r, _, _ = select.select([a, b], [], [])
            for s in r:
                d = s.recv(65536)
                if not d:
                    return
                (b if s is a else a).sendall(d)
    except OSError:
        pass
    finally:
        a.close(); b.close()
def serve():
    while True:
        c, _ = srv.accept()
        u = socket.socket(socket.AF_UNIX)
        try:
            u.connect(sock_path)
        except OSError:
            c.close(); continue
        threading.Thread(target=pipe, args=(c, u), daemon=True).start()
threading.Thread(target=serve, daemon=True).start()
sys.exit(subprocess.call(cmd))
"""


def short_socket_dir(runner_id: str) -> Path:
    """Where a runner's sockets go when its scratch dir's path is too long for AF_UNIX."""
    return Path(tempfile.gettempdir()) / f"gp-sock-{runner_id}"


class SandboxUnavailable(RuntimeError):
    """bwrap is missing and the operator did not allow unsandboxed runs."""


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
        agent_socket: Callable[[Path], AgentSocket] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.workdir = Path(workdir).resolve()
        self.env = dict(env or {})
        self.secrets = dict(secrets or {})
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
        self.scratch_root = Path(scratch_root) if scratch_root else Path(tempfile.gettempdir())
        self.agent_socket_factory = agent_socket
        self.run_id = uuid.uuid4().hex[:12]
        self.limits_applied: dict[str, object] = {}
        self.egress_log: list[dict[str, object]] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._canceled = threading.Event()
        self._tmp: Path | None = None
        self._sockets: Path | None = None
        self._proxy: EgressProxy | None = None
        self._agent_socket: AgentSocket | None = None
        self._cgroups: list[Path] = []
        self._log_lock = threading.Lock()

    # -- helpers -----------------------------------------------------------------------------
    @property
    def sandboxed(self) -> bool:
        return bool(self.bwrap)

    def mask(self, text: str) -> str:
        """Replace every secret value (longest first) by ********."""
        for value in sorted((v for v in self.secrets.values() if v), key=len, reverse=True):
            text = text.replace(value, MASK)
        return text

    def _log(self, stream: str, text: str) -> None:
        with self._log_lock:
            self.on_log(stream, self.mask(text))

    def _python_dirs(self) -> list[str]:
        return sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)})

    def _python(self) -> str:
        """The interpreter to run for `python`/`python3`: the base runtime (stdlib only)."""
        base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
        return str(base) if base.exists() else os.path.realpath(sys.executable)

    def _on_connection(self, host: str, port: int, allowed: bool) -> None:
        self.egress_log.append({"host": host, "port": port, "allowed": allowed, "at": _now().isoformat()})
        self._log("egress", f"egress {'allowed' if allowed else 'DENIED'}: {host}:{port}")

    # -- steps -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Check the engine, stage the private temp dir, start the egress proxy if needed."""
        if not self.sandboxed and not self.allow_unsandboxed:
            raise SandboxUnavailable(UNSANDBOXED_HINT)
        if not self.workdir.is_dir():
            raise FileNotFoundError(f"workdir does not exist: {self.workdir}")
        self.scratch_root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.scratch_root / f"sbx-{self.run_id}"
        self._tmp.mkdir(mode=0o700)
        self._sockets = self._tmp
        if len(str(self._tmp / "egress" / "egress.sock")) > SOCKET_PATH_MAX:
            self._sockets = short_socket_dir(self.run_id)
            self._sockets.mkdir(mode=0o700)
        lib = self._tmp / "lib"
        (lib / "catalog").mkdir(parents=True)
        (lib / "catalog" / "__init__.py").write_text("")
        shutil.copytree(
            Path(__file__).resolve().parent.parent / "demo_agent",
            lib / "catalog" / "demo_agent",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        (lib / "goldpath_forwarder.py").write_text(FORWARDER)
        if isinstance(self.network, list):
            (self._sockets / "egress").mkdir(mode=0o700)
            self._proxy = EgressProxy(self._sockets / "egress" / "egress.sock", self.network, self._on_connection)
            self._proxy.start()
        if self.agent_socket_factory is not None:
            (self._sockets / "agent").mkdir(mode=0o700)
            self._agent_socket = self.agent_socket_factory(self._sockets / "agent" / "agent.sock")
            self._agent_socket.start()

    def _paths(self) -> tuple[str, str, str]:
        """(lib dir, egress socket, workdir) as the agent sees them."""
        assert self._tmp is not None and self._sockets is not None
        if self.sandboxed:
            return SANDBOX_LIB, f"{EGRESS_DIR}/egress.sock", "/workspace"
        return str(self._tmp / "lib"), str(self._sockets / "egress" / "egress.sock"), str(self.workdir)

    def _agent_socket_path(self) -> str:
        assert self._sockets is not None
        return f"{AGENT_DIR}/agent.sock" if self.sandboxed else str(self._sockets / "agent" / "agent.sock")

    def build_command(self) -> list[str]:
        """The agent argv, with `python` mapped to the runtime and wrapped by the forwarder."""
        lib, sock, _ = self._paths()
        cmd = list(self.argv)
        if cmd and cmd[0] in ("python", "python3"):
            cmd[0] = self._python()
        if isinstance(self.network, list):
            cmd = [self._python(), f"{lib}/goldpath_forwarder.py", str(self.proxy_port), sock, "--", *cmd]
        return cmd

    def build_env(self) -> dict[str, str]:
        """A fresh environment: PATH, HOME=/tmp, PYTHONPATH, proxy vars, agent socket, extras, secrets."""
        lib, _, _ = self._paths()
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp" if self.sandboxed else str(self._tmp),
            "LANG": "C.UTF-8",
            "PYTHONPATH": lib,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "GOLDPATH_RUN_ID": self.run_id,
        }
        if isinstance(self.network, list):
            proxy = f"http://127.0.0.1:{self.proxy_port}"
            for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
                env[key] = proxy
            env["NO_PROXY"] = env["no_proxy"] = ""
        if self._agent_socket is not None:
            env["GOLDPATH_AGENT_SOCKET"] = self._agent_socket_path()
        env.update(self.env)
        env.update(self.secrets)
        return env

    def build_args(self) -> list[str]:
        """Full argv: bwrap flags + command (or the bare command when unsandboxed)."""
        cmd = self.build_command()
        if not self.sandboxed:
            return cmd
        assert self._tmp is not None and self.bwrap
        assert self._sockets is not None
        args = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session"]
        for path in ("/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"):
            if os.path.exists(path):
                args += ["--ro-bind", path, path]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for path in self._python_dirs():
            args += ["--ro-bind", path, path]
        args += ["--ro-bind", str(self._tmp / "lib"), SANDBOX_LIB]
        if isinstance(self.network, list):
            args += ["--bind", str(self._sockets / "egress"), EGRESS_DIR]
        if self._agent_socket is not None:
            args += ["--bind", str(self._sockets / "agent"), AGENT_DIR]
        args += ["--bind", str(self.workdir), "/workspace", "--chdir", "/workspace"]
        return [*args, "--", *cmd]

    def description(self) -> dict[str, object]:
        """What the caller records as the run's sandbox (policy_hash() of this goes in provenance)."""
        return {
            "engine": "bubblewrap" if self.sandboxed else "none",
            "network": self.network if isinstance(self.network, list) else "none",
            "binds": {
                "ro": ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc", *self._python_dirs(), SANDBOX_LIB],
                "rw": ["/workspace"]
                + ([EGRESS_DIR] if isinstance(self.network, list) else [])
                + ([AGENT_DIR] if self.agent_socket_factory is not None else []),
                "tmpfs": ["/tmp"],
            }
            if self.sandboxed
            else {},
            "namespaces": ["user", "ipc", "pid", "net", "uts", "cgroup"] if self.sandboxed else [],
            "limits": {
                "time_limit_s": self.time_limit,
                "memory_mb": self.memory_mb,
                "max_processes": self.max_processes,
            },
        }

    def _setup_cgroups(self) -> None:
        for controller, file, value in (
            ("memory", "memory.limit_in_bytes", self.memory_mb and self.memory_mb << 20),
            ("pids", "pids.max", self.max_processes),
        ):
            if not value:
                continue
            base = CGROUP_ROOT / controller
            if not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
                continue
            path = base / f"goldpath-{self.run_id}"
            try:
                path.mkdir()
                (path / file).write_text(str(value))
                self._cgroups.append(path)
                self.limits_applied[f"cgroup_v1_{controller}"] = value
            except OSError:
                continue

    def _preexec(self) -> None:
        """In the child before exec: join the cgroups, set rlimits (inherited by bwrap and the agent)."""
        for cg in self._cgroups:
            try:
                (cg / "cgroup.procs").write_text(str(os.getpid()))
            except OSError:
                pass
        if self.memory_mb:
            resource.setrlimit(resource.RLIMIT_AS, (self.memory_mb << 20,) * 2)
        if self.max_processes:
            resource.setrlimit(resource.RLIMIT_NPROC, (self.max_processes,) * 2)
        cpu = int(self.time_limit) + 5
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))

    def _kill_tree(self) -> None:
        """SIGTERM then SIGKILL the process group, and every pid left in our cgroups."""
        proc = self._proc
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            for cg in self._cgroups:
                try:
                    for pid in (cg / "cgroup.procs").read_text().split():
                        os.kill(int(pid), sig)
                except (OSError, ValueError):
                    pass
            try:
                proc.wait(timeout=wait)
                if sig == signal.SIGTERM and not self._cgroup_pids():
                    return
            except subprocess.TimeoutExpired:
                continue

    def _cgroup_pids(self) -> list[str]:
        pids: list[str] = []
        for cg in self._cgroups:
            try:
                pids += (cg / "cgroup.procs").read_text().split()
            except OSError:
                pass
        return pids

    def _pump(self, stream: str, pipe) -> None:
        for raw in iter(pipe.readline, b""):
            self._log(stream, raw.decode("utf-8", "replace").rstrip("\n"))
        pipe.close()

    def execute(self) -> tuple[str, int | None]:
        """Start the process, stream lines, heartbeat, enforce the time limit."""
        self._setup_cgroups()
        rl = {"rlimit_cpu_s": int(self.time_limit) + 5}
        if self.memory_mb:
            rl["rlimit_as_bytes"] = self.memory_mb << 20
        if self.max_processes:
            rl["rlimit_nproc"] = self.max_processes
        self.limits_applied.update(rl)
        self.limits_applied["time_limit_s"] = self.time_limit
        args = self.build_args()
        self._log(
            "system",
            self.mask(
                f"launching ({'bubblewrap' if self.sandboxed else 'UNSANDBOXED'}): {json.dumps(self.build_command())}"
            ),
        )
        _, _, cwd = self._paths()
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=self._preexec,
            env=self.build_env(),
            cwd=None if self.sandboxed else cwd,
        )
        pumps = [
            threading.Thread(target=self._pump, args=(name, pipe), daemon=True)
            for name, pipe in (("stdout", self._proc.stdout), ("stderr", self._proc.stderr))
        ]
        for t in pumps:
            t.start()
        deadline = time.monotonic() + self.time_limit
        next_beat = time.monotonic()
        status: str | None = None
        while self._proc.poll() is None:
            now = time.monotonic()
            if self._canceled.is_set():
                status = "canceled"
            elif now >= deadline:
                status = "timed_out"
            if status:
                self._log("system", f"{status}: killing the process tree")
                self._kill_tree()
                break
            if now >= next_beat:
                self.heartbeat()
                next_beat = now + self.heartbeat_interval
            time.sleep(0.05)
        code = self._proc.wait()
        for t in pumps:
            t.join(timeout=2)
        if status is None:
            if self._cgroup_pids():  # the agent exited but left children behind
                self._kill_tree()
            status = "succeeded" if code == 0 else "failed"
        return status, code

    def cleanup(self) -> None:
        if self._proxy:
            self._proxy.stop()
        if self._agent_socket:
            self._agent_socket.stop()
        for cg in self._cgroups:
            for _ in range(50):
                try:
                    cg.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)
        for path in {self._tmp, self._sockets} - {None}:
            shutil.rmtree(path, ignore_errors=True)

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
            limits_applied=dict(self.limits_applied),
            sandbox=self.description(),
            egress=list(self.egress_log),
        )

    def cancel(self) -> None:
        """Ask run() to kill the tree; the result's status becomes `canceled`."""
        self._canceled.set()
