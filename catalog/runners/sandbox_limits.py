"""A sandbox's limits: rlimits, cgroups where the worker may write them, and killing its process tree.

A sandbox's limits: rlimits (CPU seconds, processes, and address space only where no memory cgroup applies), v1
cgroups (memory, pids) where the worker may write them, the host uid of a root worker's sandbox, and killing every
process of the sandbox's tree.

Memory: the real agent CLIs are Node, Bun and Rust programs that reserve far more virtual address space than they
use (Claude Code's Bun reserves ~10 GB when it may), so an address-space limit is a poor memory bound for them: too
low and they die at start. Where the worker may write the v1 memory cgroup (a root worker) that cgroup bounds the
sandbox's real memory and RLIMIT_AS is not set; elsewhere (an unprivileged worker: no writable memory cgroup here)
RLIMIT_AS = memory_mb is the only bound left and stays (the CLIs measured start under 1024 MB, Claude Code not
under 512 MB). `limits_applied["memory_bound"]` records which one applied."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from pathlib import Path

from catalog.runners.spawn import LIBC, Zygote, make_cgroups, ro_binds


class Limits:
    def __init__(
        self, run_id: str, *, time_limit: float, memory_mb: int | None, max_processes: int | None, uid: int | None
    ) -> None:
        self.run_id = run_id
        self.time_limit = time_limit
        self.memory_mb = memory_mb
        self.max_processes = max_processes
        self.uid = uid
        self.cgroups: list[Path] = []
        self.applied: dict[str, object] = {}
        self.binds: list[tuple[str, str]] = []  # made as root, in the sandbox's own mount namespace (spawn.ro_binds)

    @property
    def cgroup_values(self) -> tuple[int | None, int | None]:
        """(memory bytes, pids) for the cgroups."""
        return (self.memory_mb << 20 if self.memory_mb else None, self.max_processes or None)

    @property
    def memory_cgroup(self) -> bool:
        """Whether a v1 memory cgroup bounds this run (known once its cgroups are made or adopted)."""
        return "cgroup_v1_memory" in self.applied

    def rlimits(self) -> list[tuple[str, int]]:
        limits = [("RLIMIT_CPU", int(self.time_limit) + 5)]
        limits += [("RLIMIT_AS", self.memory_mb << 20)] if self.memory_mb and not self.memory_cgroup else []
        limits += [("RLIMIT_NPROC", self.max_processes)] if self.max_processes else []
        return limits

    def record(self) -> None:
        """What applied, once the cgroups are in place (their presence decides RLIMIT_AS)."""
        names = {"RLIMIT_CPU": "rlimit_cpu_s", "RLIMIT_AS": "rlimit_as_bytes", "RLIMIT_NPROC": "rlimit_nproc"}
        self.applied.update({names[name]: value for name, value in self.rlimits()})
        self.applied["time_limit_s"] = self.time_limit
        if self.memory_mb:
            self.applied["memory_bound"] = "cgroup_v1_memory" if self.memory_cgroup else "rlimit_as"
        if self.uid is not None:
            self.applied["host_uid"] = self.uid

    def make_cgroups(self) -> None:
        """This run's cgroups, when the process is started directly (not through a zygote)."""
        self.cgroups, applied = make_cgroups(self.run_id, self.cgroup_values)
        self.applied.update(applied)

    def adopt(self, zygote: Zygote) -> None:
        """The zygote's cgroups (limits already set) become this run's, named after it for the reaper."""
        for path in zygote.cgroups:
            target = path.parent / f"goldpath-{self.run_id}"
            try:
                os.rename(path, target)
            except OSError:
                target = path
            self.cgroups.append(target)
        self.applied.update(zygote.applied)

    def preexec(self) -> None:
        """In the child before exec: join the cgroups, set rlimits, bind the runtime, then drop to the sandbox's uid
        (last: the rest needs root)."""
        for cg in self.cgroups:
            try:
                (cg / "cgroup.procs").write_text(str(os.getpid()))
            except OSError:
                pass
        for name, value in self.rlimits():
            resource.setrlimit(getattr(resource, name), (value, value))
        ro_binds(self.binds, LIBC)
        if self.uid is not None:
            os.setgroups([])
            os.setresgid(self.uid, self.uid, self.uid)
            os.setresuid(self.uid, self.uid, self.uid)

    def pids(self) -> list[str]:
        found: list[str] = []
        for cg in self.cgroups:
            try:
                found += (cg / "cgroup.procs").read_text().split()
            except OSError:
                pass
        return found

    def kill_tree(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM then SIGKILL the process group, and every pid left in the cgroups."""
        for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            for pid in self.pids():
                try:
                    os.kill(int(pid), sig)
                except (OSError, ValueError):
                    pass
            try:
                proc.wait(timeout=wait)
                if sig == signal.SIGTERM and not self.pids():
                    return
            except subprocess.TimeoutExpired:
                continue

    def remove(self) -> None:
        for cg in self.cgroups:
            for _ in range(500):
                try:
                    cg.rmdir()
                    break
                except OSError:
                    time.sleep(0.005)
