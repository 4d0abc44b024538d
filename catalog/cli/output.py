"""Output for people (Rich tables on stdout, notes on stderr) and for scripts (`--json`: JSON on stdout only)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout (nothing else).")]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    """A human message on stderr (kept out of stdout, so pipes get data only)."""
    err.print(message, markup=False)


def say(message: str, *, style: str | None = None) -> None:
    out.print(message, markup=False, style=style)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    grid = Table(title=title, show_edge=False, header_style="bold", pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        # API values are shown as plain text: a name with [brackets] is never read as Rich markup
        grid.add_row(*(cell if isinstance(cell, Text) else Text(text(cell)) for cell in row))
    return grid


def text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


STATUS_STYLES = {
    "succeeded": "green",
    "running": "cyan",
    "approved": "green",
    "published": "green",
    "failed": "red",
    "timed_out": "red",
    "canceled": "yellow",
    "banned": "red",
    "rejected": "red",
    "pending": "dim",
    "done": "green",
}


def status(value: str | None) -> Text:
    """A status word coloured by meaning."""
    word = value or "-"
    return Text(word, style=STATUS_STYLES.get(word, ""))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"
