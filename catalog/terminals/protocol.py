"""The wire formats of the agent link and the terminal socket, and the close codes both ends use.

Agent link (workspace agent <-> portal): text frames are JSON with an `op`; binary frames from the agent are
16 bytes of session id followed by that session's terminal output. Terminal socket (client <-> portal): text
frames `{"data": "..."}` / `{"resize": {"cols": C, "rows": R}}`, binary frames of output (issue 15's contract)."""

from __future__ import annotations

import json
import uuid
from typing import Any

CLOSE_NORMAL = 1000
CLOSE_BAD_MESSAGE = 4400
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_RUNNING = 4409
CLOSE_AGENT_GONE = 4410
CLOSE_AGENT_NOT_READY = 4503

CLOSE_REASONS = {
    CLOSE_NORMAL: "the shell ended",
    CLOSE_BAD_MESSAGE: "a message was not understood",
    CLOSE_FORBIDDEN: "only the workspace's owner may open its terminal",
    CLOSE_NOT_RUNNING: "the workspace is not running",
    CLOSE_AGENT_GONE: "the workspace agent disconnected (the workspace stopped or restarts)",
    CLOSE_AGENT_NOT_READY: "the workspace agent is not connected yet",
}

MAX_INPUT_CHARS = 65536
MAX_COLS, MAX_ROWS = 1000, 500


class BadMessage(ValueError):
    pass


def parse_client_frame(text: str) -> tuple[str, Any]:
    """('data', str) or ('resize', (cols, rows)); BadMessage for anything else."""
    if len(text) > MAX_INPUT_CHARS * 6 + 64:
        raise BadMessage("message too large")
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):  # nesting deeper than the parser's stack is not JSON we take either
        raise BadMessage("not JSON") from None
    if not isinstance(msg, dict) or len(msg) != 1:
        raise BadMessage('expected {"data": ...} or {"resize": ...}')
    if "data" in msg:
        if not isinstance(msg["data"], str) or len(msg["data"]) > MAX_INPUT_CHARS:
            raise BadMessage("data must be a string of at most 65536 characters")
        try:  # JSON may escape a lone surrogate ("\ud800"): text no terminal can be sent
            msg["data"].encode()
        except UnicodeEncodeError:
            raise BadMessage("data must be valid Unicode text") from None
        return "data", msg["data"]
    if "resize" in msg:
        return "resize", size(msg["resize"])
    raise BadMessage('expected {"data": ...} or {"resize": ...}')


def size(value: Any) -> tuple[int, int]:
    if not isinstance(value, dict):
        raise BadMessage("resize must be {cols, rows}")
    cols, rows = value.get("cols"), value.get("rows")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (cols, rows)):
        raise BadMessage("cols and rows must be integers")
    if not (1 <= cols <= MAX_COLS and 1 <= rows <= MAX_ROWS):
        raise BadMessage(f"cols must be 1-{MAX_COLS} and rows 1-{MAX_ROWS}")
    return cols, rows


def agent_frame(op: str, session: uuid.UUID, **fields: Any) -> str:
    return json.dumps({"op": op, "session": session.hex, **fields}, separators=(",", ":"))


def split_output(frame: bytes) -> tuple[str, bytes]:
    """(session hex, output) of an agent's binary frame."""
    if len(frame) < 16:
        raise BadMessage("short output frame")
    return frame[:16].hex(), frame[16:]
