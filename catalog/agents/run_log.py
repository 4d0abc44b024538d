"""A run's log as the worker keeps it, with the agent's own output and the diff's stat.

Lines from the sandbox's pump threads, flushed to the database from the task's own thread; the agent's own
output kept (bounded) to read the usage it reports; and the diff's stat."""

from __future__ import annotations

import re
from typing import Any

from ..jobs.worker import JobLog
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


class RunLog(JobLog):
    """Lines (stream, text) from the sandbox's pump threads, flushed to the database from the task's own thread;
    keeps the test command's output (`capture`) and the agent's own output (`keep_agent_output`)."""

    def __init__(self, run_id: int):
        super().__init__(lambda lines: agent_run_log(run_id=run_id, lines=lines))
        self.run_id = run_id
        self.captured: list[str] = []
        self.capture = False
        self.agent_output: list[str] = []  # the agent's own stdout/stderr (its usage report is read from it)
        self.agent_chars = 0
        self.keep_agent_output = False

    def observe(self, line: tuple) -> None:
        stream, text = line
        if self.capture:
            self.captured.append(text)
        if self.keep_agent_output and stream in ("stdout", "stderr") and self.agent_chars < AGENT_OUTPUT_MAX:
            self.agent_output.append(text)
            self.agent_chars += len(text)
