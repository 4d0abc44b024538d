"""Reading what Terraform prints: `-json` diagnostics and stderr's frames, as readable text.

`-json` diagnostics become readable text (a failed local-exec reduced to why it failed and what it printed, never
the whole script), and stderr's `╷ │ ╵` frames one message each, without the warning about the machine's CLI
configuration.
"""

from __future__ import annotations

import json
import re
from typing import Any

OFFLINE_HINT = (
    "Terraform could not download the providers this template needs: this machine cannot reach the "
    "provider registry (no network). Publish it where the registry is reachable or mirror the providers."
)


# Terraform's human-readable messages on stderr come framed: "╷", "│ Warning: summary", "│", "│ detail", "╵".
FRAME_OPEN, FRAME_LINE, FRAME_CLOSE = "╷", "│", "╵"
CLI_CONFIG_NOISE = re.compile(
    r"^(There are some problems with the CLI configuration:?|Warning: (Unable to open CLI configuration file|"
    r"Provider development overrides are in effect)\b.*)$"
)


def stderr_messages(lines: list[str]) -> list[str]:
    """Terraform's stderr as messages: each `╷ │ ╵` frame becomes one message ("Warning: summary: detail"), other
    lines stay as they are; the CLI-configuration warning (a missing CLI config file, provider development
    overrides) and its header line are dropped: it is about the machine, not the build."""
    messages: list[str] = []
    frame: list[str] | None = None
    for raw in lines:
        line = raw.rstrip("\n").rstrip()
        if line == FRAME_OPEN:
            frame = []
        elif line == FRAME_CLOSE and frame is not None:
            parts = [p for p in frame if p]
            if parts and not CLI_CONFIG_NOISE.match(parts[0]):
                messages.append(": ".join([parts[0], " ".join(parts[1:])]) if len(parts) > 1 else parts[0])
            frame = None
        elif frame is not None:
            frame.append(line.removeprefix(FRAME_LINE).strip())
        elif line and not CLI_CONFIG_NOISE.match(line):
            messages.append(line)
    if frame:  # an unterminated frame (terraform killed mid-message)
        messages.append(" ".join(p for p in frame if p))
    return messages


LOCAL_EXEC_FAILURE = re.compile(
    r"\AError running command '(?P<command>.*)': (?P<why>[^\n]{1,200}?)\. Output: (?P<output>.*)\Z", re.S
)
ERROR_OUTPUT_LINES = 8


def _provisioner_failure(detail: str) -> str | None:
    """A failed local-exec's detail quotes the whole command (a shell script) before what it printed: keep why it
    failed and the last lines it printed, which say what went wrong."""
    match = LOCAL_EXEC_FAILURE.match(detail.strip())
    if match is None:
        return None
    output = [line.rstrip() for line in match["output"].splitlines() if line.strip()]
    said = "\n".join(output[-ERROR_OUTPUT_LINES:]) if output else "(the command printed nothing)"
    return f"the command failed ({match['why']}):\n{said}"


GO_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


def compact_executing(output: str) -> str:
    """local-exec announces `Executing: ["/bin/sh" "-c" "<the whole script>"]` (Go-quoted words): name the
    interpreter and the script's first line instead of copying the script (it is in the template) into the log."""
    if not (output.startswith("Executing: [") and output.endswith("]")):
        return output
    try:
        argv = [json.loads(word) for word in GO_QUOTED.findall(output[len("Executing: [") : -1])]
    except ValueError:
        return output
    if not argv or not all(isinstance(a, str) for a in argv):
        return output
    script = argv[-1].strip().splitlines()
    first = script[0] if script else ""
    if len(first) > 120:
        first = first[:119] + "…"
    more = f" (+{len(script) - 1} more lines)" if len(script) > 1 else ""
    return f"Executing: {' '.join(argv[:-1])} {first}{more}".rstrip()


def diagnostic_text(diag: dict[str, Any]) -> str:
    summary = diag.get("summary", "")
    detail = diag.get("detail", "")
    failure = _provisioner_failure(detail) if detail else None
    if failure is not None:
        address = diag.get("address")
        return f"{summary}{f' in {address}' if address else ''}: {failure}"
    text = f"{summary}: {detail}" if detail else summary
    if re.search(
        r"(Failed to query available provider packages|could not connect to registry|Failed to install provider)",
        text,
        re.I,
    ):
        text = f"{OFFLINE_HINT} ({text})"
    return text
