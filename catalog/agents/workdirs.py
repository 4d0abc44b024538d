"""Where a run's private folder lives on a worker, and removing what a run whose worker died left behind.

Each run has a folder `run-<id>-...` under the sandbox root (outside GOLDPATH_HOME, which is 0700: sandboxes run
as an unprivileged uid of their own when the worker is root), recorded as the run's `workdir`. The reaper
(catalog.services.agent_runs) calls cleanup_after_worker_loss for a run whose heartbeat stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from pathlib import Path

from ..conf import goldpath_settings
from ..models import AgentRun
from ..runners.sandbox_files import sandbox_root, short_socket_dir


def sandboxes() -> Path:
    return sandbox_root(goldpath_settings.SANDBOX_ROOT)


def is_run_dir(path: str) -> bool:
    """A recorded workdir is removed only when it is a run folder under the sandbox root."""
    p = Path(path)
    return bool(path) and p.parent == sandboxes() and p.name.startswith("run-")


def cleanup_after_worker_loss(run: AgentRun) -> None:
    """The reaper's cleanup for a run whose worker died: kill what is left of its sandbox, remove its copy."""
    runner_id = (run.sandbox or {}).get("runner_id")
    same_host = (run.sandbox or {}).get("host") == socket.gethostname()
    if runner_id and same_host:
        shutil.rmtree(short_socket_dir(runner_id), ignore_errors=True)
        for controller in ("memory", "pids"):
            cg = Path("/sys/fs/cgroup") / controller / f"goldpath-{runner_id}"
            try:
                for pid in (cg / "cgroup.procs").read_text().split():
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
            for _ in range(20):
                try:
                    cg.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
    if is_run_dir(run.workdir):
        shutil.rmtree(run.workdir, ignore_errors=True)
