"""The worker's side of a job's log and liveness: one buffered log writer and one heartbeat thread.

Runners call back from their own threads (output pumps); the writer batches their lines and writes them with
the job's `log` service, so a chatty process costs one insert per batch, not one per line. The heartbeat
thread keeps a job alive while its process runs silently and cancels the runner once a cancel is asked.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, connection


class JobLog:
    """Lines added from any thread, written in batches by `flush` (and by `add` when `flush_every_s` passed)."""

    def __init__(self, write: Callable[[list[tuple]], Any], *, flush_every_s: float | None = None):
        self.write = write
        self.flush_every_s = flush_every_s
        self.lines: list[tuple] = []
        self.lock = threading.Lock()
        self.last_flush = 0.0

    def observe(self, line: tuple) -> None:
        """Called under the lock for each line added (subclasses keep what they need of it)."""

    def add(self, *line: Any) -> None:
        with self.lock:
            self.lines.append(line)
            self.observe(line)
        if self.flush_every_s is not None and time.monotonic() - self.last_flush > self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            lines, self.lines = self.lines, []
        self.last_flush = time.monotonic()
        if lines:
            self.write(lines)


def runner_pgid(runner: Any) -> int | None:
    """The process group of the runner's live process, if it has one."""
    for attr in ("pgid", "process_group"):
        value = getattr(runner, attr, None)
        if isinstance(value, int):
            return value
    proc = getattr(runner, "process", None) or getattr(runner, "proc", None)
    pid = getattr(proc, "pid", None)
    if pid and getattr(proc, "returncode", 0) is None:
        try:
            return os.getpgid(pid)
        except ProcessLookupError:
            return None
    return None


class HeartbeatThread(threading.Thread):
    """Beats every `interval` seconds while the runner runs, whether or not it prints anything: passes the
    runner's process group when it changes, and cancels the runner once `beat` answers True."""

    def __init__(self, beat: Callable[[int | None], bool], *, interval: float, runner: Any = None, name: str = ""):
        super().__init__(daemon=True, name=name or "heartbeat")
        self.beat, self.interval, self.runner = beat, interval, runner
        self.stopped = threading.Event()
        self.pgid: int | None = None

    def run(self) -> None:
        canceled = False
        try:
            while not self.stopped.wait(self.interval):
                pgid = runner_pgid(self.runner)
                changed = pgid if pgid != self.pgid else None
                if changed is not None:
                    self.pgid = changed
                if self.beat(changed) and not canceled and self.runner:
                    canceled = True
                    self.runner.cancel()
        finally:
            close_old_connections()
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)
