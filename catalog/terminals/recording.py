"""asciicast v2 recordings of terminal sessions (https://docs.asciinema.org/manual/asciicast/v2/)."""

from __future__ import annotations

import codecs
import json
import time

from .services import RECORDING_MAX_CHARS


class Recorder:
    """Collects a session's output and resizes with their times; `text()` is the .cast file."""

    def __init__(self, cols: int, rows: int, limit: int = RECORDING_MAX_CHARS) -> None:
        self.started = time.monotonic()
        header = {"version": 2, "width": cols, "height": rows, "timestamp": int(time.time())}
        self.lines = [json.dumps(header)]
        self.size = len(self.lines[0])
        self.limit = limit
        self.truncated = False
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def _add(self, kind: str, text: str) -> None:
        if self.truncated or not text:
            return
        line = json.dumps([round(time.monotonic() - self.started, 6), kind, text], ensure_ascii=False)
        if self.size + len(line) + 1 > self.limit:
            self.truncated = True
            return
        self.lines.append(line)
        self.size += len(line) + 1

    def output(self, data: bytes) -> None:
        self._add("o", self._decoder.decode(data))

    def resize(self, cols: int, rows: int) -> None:
        self._add("r", f"{cols}x{rows}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"
