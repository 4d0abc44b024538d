"""Starting a sandbox process fast as root: its own network namespace, a warm process already in its cgroups.

Two costs dominated a sandbox's start on these machines: a Python forwarder inside the sandbox (to give the agent
a loopback proxy port) and moving the new process into its v1 cgroups (each first move after a quiet spell waits
for an RCU grace period, ~12 ms). A root worker avoids both:

- it makes the sandbox's network namespace itself (from a thread: namespaces are per thread, so the worker's
  other threads keep the host's), brings its loopback up and binds the proxy port there; the egress proxy serves
  that listening socket directly, and bwrap joins the namespace instead of making one;
- a *zygote*, a small process started ahead of time in its own network namespace and cgroups, waits for its
  command on a pipe. Taking one costs a pipe write: it sets the run's rlimits, drops to the run's uid and execs
  bwrap. A new zygote is made in the background for the next run.

A zygote's starting thread stays alive for the sandbox's life: bwrap's --die-with-parent follows that thread.
Workers that are not root start bwrap directly (and a forwarder relays the proxy port).

A tool runtime lives under GOLDPATH_HOME (0700), which the sandbox's uid may not traverse, and bwrap, running as
that uid, resolves every bind source by path (even `--ro-bind-fd`: it realpath()s /proc/self/fd/N, which fails
with EACCES on the 0700 folder). So the zygote, still root, enters a mount namespace of its own and binds the
runtime read-only onto an empty folder of the run's scratch dir (`ro_binds`); bwrap, started in that namespace,
binds that folder. The host's mount table never changes and the namespace ends with the sandbox.
"""

from __future__ import annotations

import ctypes
import fcntl
import inspect
import itertools
import json
import os
import queue
import socket
import struct
import subprocess
import textwrap
import threading
import uuid
from pathlib import Path

CLONE_NEWNET = 0x40000000
SIOCSIFFLAGS, IFF_UP_RUNNING = 0x8914, 0x1 | 0x40
CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids")
LIMIT_FILES = {"memory": "memory.limit_in_bytes", "pids": "pids.max"}
POOL_SIZE = 1


def ro_binds(binds: list, libc=None) -> None:
    """Give the calling (single-threaded, root) process a private mount namespace with each source bound
    read-only, nosuid, nodev on its target. Self-contained: the zygote's shim runs this very source."""
    import ctypes
    import os

    if not binds:
        return
    libc = libc or ctypes.CDLL(None, use_errno=True)
    ms_rdonly, ms_nosuid, ms_nodev, ms_noexec, ms_remount, ms_bind, ms_rec, ms_private = (
        0x1,
        0x2,
        0x4,
        0x8,
        0x20,
        0x1000,
        0x4000,
        0x40000,
    )

    def check(result: int, what: str) -> None:
        if result != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    check(libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")
    check(libc.mount(None, b"/", None, ms_rec | ms_private, None), "making the mounts private")
    for source, target in binds:
        check(libc.mount(source.encode(), target.encode(), None, ms_bind, None), f"binding {source}")
        keep = ms_noexec if os.statvfs(target).f_flag & 0x8 else 0  # ST_NOEXEC: never lift the host's noexec
        flags = ms_remount | ms_bind | ms_rdonly | ms_nosuid | ms_nodev | keep
        check(libc.mount(None, target.encode(), None, flags, None), f"making {target} read-only")


LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before any fork: a preexec_fn must not dlopen
# Runs in the zygote (`python -I -S`): waits for its job on a pipe, then becomes bwrap with the run's limits and uid.
SHIM = (
    textwrap.dedent(inspect.getsource(ro_binds))
    + r"""
import json, os, resource, sys
fd, data = int(sys.argv[1]), b""
while True:
    chunk = os.read(fd, 1 << 16)
    if not chunk:
        break
    data += chunk
os.close(fd)  # nothing of the pipe reaches the sandbox
if not data:
    os._exit(0)
job = json.loads(data)
try:
    ro_binds(job["binds"])
except OSError as exc:
    sys.stderr.write(f"goldpath: the tool runtime cannot be mounted ({exc})\n")
    sys.stderr.flush()
    os._exit(126)
for name, value in job["rlimits"]:
    resource.setrlimit(getattr(resource, name), (value, value))
if job["uid"] is not None:
    os.setgroups([])
    os.setresgid(job["uid"], job["uid"], job["uid"])
    os.setresuid(job["uid"], job["uid"], job["uid"])
os.execve(job["argv"][0], job["argv"], job["env"])
"""
)
_NETNS_OK: list[bool] = []
_POOL: queue.Queue[Zygote] = queue.Queue()
_FILLING = threading.Lock()
_IDS = itertools.count()


def unshare_net() -> None:
    """Give the calling thread (only) a new network namespace with its loopback up."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", IFF_UP_RUNNING, b""))


def own_netns_supported() -> bool:
    """Whether this worker can make a sandbox's network namespace itself (root with CAP_SYS_ADMIN)."""
    if not _NETNS_OK:
        ok: list[bool] = []

        def probe() -> None:
            try:
                unshare_net()
                ok.append(True)
            except OSError:
                ok.append(False)

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()
        _NETNS_OK.append(os.geteuid() == 0 and bool(ok and ok[0]))
    return _NETNS_OK[0]


_SWEPT: list[bool] = []


def make_cgroups(name: str, limits: tuple[int | None, int | None]) -> tuple[list[Path], dict[str, int]]:
    """`goldpath-<name>` in the memory and pids hierarchies where this process may write them, with `limits`
    (memory bytes, pids) set; returns the folders and what was applied."""
    made: list[Path] = []
    applied: dict[str, int] = {}
    for controller, value in zip(CONTROLLERS, limits, strict=True):
        base = CGROUP_ROOT / controller
        if not value or not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
            continue
        path = base / f"goldpath-{name}"
        try:
            path.mkdir()
            (path / LIMIT_FILES[controller]).write_text(str(value))
        except OSError:
            continue
        made.append(path)
        applied[f"cgroup_v1_{controller}"] = value
    return made, applied


def sweep_stale_cgroups() -> int:
    """Remove the cgroups of zygotes whose worker process is gone (a waiting zygote ends with its worker, its
    cgroup folders do not); once per process. Returns how many were removed."""
    if _SWEPT:
        return 0
    _SWEPT.append(True)
    removed = 0
    for controller in CONTROLLERS:
        base = CGROUP_ROOT / controller
        if not os.access(base, os.W_OK):
            continue
        for path in base.glob("goldpath-z*-*"):
            owner = path.name[len("goldpath-z") :].split("-", 1)[0]
            if not owner.isascii() or not owner.isdigit() or pid_alive(int(owner)):
                continue
            try:
                path.rmdir()  # refused while a process is still inside
                removed += 1
            except OSError:
                pass
    return removed


def pid_alive(pid: int) -> bool:
    """The process exists (a process of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Zygote:
    """One waiting process in its own network namespace (loopback port bound) and its own cgroups."""

    def __init__(self, python: str, port: int, limits: tuple[int | None, int | None]) -> None:
        """`limits`: (memory bytes, pids), written before the zygote joins its cgroups (changing a memory limit
        of a populated v1 cgroup drains every CPU's charge cache: ~10 ms)."""
        self.python, self.port, self.limits = python, port, limits
        sweep_stale_cgroups()
        self.id = f"z{os.getpid()}-{next(_IDS)}-{uuid.uuid4().hex[:6]}"
        self.cgroups, self.applied = make_cgroups(self.id, limits)
        self.released = threading.Event()
        self.started = False  # go() handed it its command
        self._discarded = False
        self.listener: socket.socket | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.error: BaseException | None = None
        self._go_r, self._go_w = os.pipe()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._start, args=(python, port, ready), name=f"sandbox-{self.id}", daemon=True
        )
        self._thread.start()
        ready.wait()
        os.close(self._go_r)
        if self.error is not None:
            self.discard()
            raise self.error

    def _join_cgroups(self) -> None:
        for cg in self.cgroups:
            (cg / "cgroup.procs").write_text(str(os.getpid()))

    def _start(self, python: str, port: int, ready: threading.Event) -> None:
        try:
            unshare_net()
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(128)
            self.listener = listener
            self.proc = subprocess.Popen(
                [python, "-I", "-S", "-c", SHIM, str(self._go_r)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                pass_fds=(self._go_r,),
                preexec_fn=self._join_cgroups,
                env={"PATH": "/usr/bin:/bin"},
            )
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            self.error = exc
            return
        finally:
            ready.set()
        self.released.wait()

    def go(
        self,
        argv: list[str],
        env: dict[str, str],
        rlimits: list[tuple[str, int]],
        uid: int | None,
        binds: list[tuple[str, str]] | None = None,
    ) -> None:
        """Hand the zygote its command: it makes `binds` (ro_binds), applies the limits, drops to `uid` and execs
        `argv`."""
        pipe = os.fdopen(self._go_w, "wb")  # closed whatever happens: a zygote never waits on a lost pipe
        self._go_w = -1  # the file object owns the fd now: nothing closes its number twice
        job = {"argv": argv, "env": env, "rlimits": rlimits, "uid": uid, "binds": list(binds or [])}
        with pipe:
            pipe.write(json.dumps(job).encode())
        self.started = True

    def discard(self) -> None:
        """Let a zygote that never got its command end (EOF on its pipe) and free what it holds (once)."""
        if self._discarded:
            return
        self._discarded = True
        if self._go_w >= 0:
            os.close(self._go_w)
            self._go_w = -1
        if self.proc is not None:
            self.proc.wait()
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()
        if self.listener is not None:
            self.listener.close()
        self.released.set()
        for cg in self.cgroups:
            try:
                cg.rmdir()
            except OSError:
                pass


def _forget_pool() -> None:
    """A forked child must not hand out its parent's zygotes (both would hold their pipes)."""
    global _POOL
    _POOL = queue.Queue()


os.register_at_fork(after_in_child=_forget_pool)


def take_zygote(python: str, port: int, limits: tuple[int | None, int | None]) -> Zygote:
    """A warm zygote when one is ready (then another is made in the background), else a new one now."""
    key = (python, port, limits)
    try:
        zygote = _POOL.get_nowait()
        if (zygote.python, zygote.port, zygote.limits) != key or zygote.proc is None or zygote.proc.poll() is not None:
            zygote.discard()
            zygote = Zygote(*key)
    except queue.Empty:
        zygote = Zygote(*key)
    threading.Thread(target=_refill, args=key, daemon=True).start()
    return zygote


def _refill(python: str, port: int, limits: tuple[int | None, int | None]) -> None:
    if not _FILLING.acquire(blocking=False):
        return
    try:
        while _POOL.qsize() < POOL_SIZE:
            _POOL.put(Zygote(python, port, limits))
    except OSError:
        pass
    finally:
        _FILLING.release()
