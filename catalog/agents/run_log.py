"""A run's log as the worker keeps it: lines from the sandbox's pump threads, flushed to the database from the
task's own thread; the agent's own output kept (bounded) to read the usage it reports; and the diff's stat."""

from __future__ import annotations

import re
import threading
from typing import Any

from ..services.agent_runs import agent_run_log

AGENT_OUTPUT_MAX = 4 << 20  # characters of the agent's output kept to read its own usage report


def diff_stat(diff: str) -> dict[str, Any]:
    files, added, removed = [], 0, 0
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            m = re.match(r"diff --git a/(.*?) b/(.*)$", line)
            files.append(m.group(2) if m else line[11:])
        elif line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return {"files": files, "insertions": added, "deletions": removed}


class RunLog:
    """Lines from the sandbox's pump threads, flushed to the database from the task's own thread."""

    def __init__(self, run_id: int):
        self.run_id = run_id
        self.lines: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.captured: list[str] = []
        self.capture = False
        self.agent_output: list[str] = []  # the agent's own stdout/stderr (its usage report is read from it)
        self.agent_chars = 0
        self.keep_agent_output = False

    def add(self, stream: str, text: str) -> None:
        with self.lock:
            self.lines.append((stream, text))
            if self.capture:
                self.captured.append(text)
            if self.keep_agent_output and stream in ("stdout", "stderr") and self.agent_chars < AGENT_OUTPUT_MAX:
                self.agent_output.append(text)
                self.agent_chars += len(text)

    def flush(self) -> None:
        with self.lock:
            lines, self.lines = self.lines, []
        if lines:
            agent_run_log(run_id=self.run_id, lines=lines)
