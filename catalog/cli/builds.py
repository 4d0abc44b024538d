"""Follow a workspace build: its log lines as they arrive, under a progress bar, until it ends."""

from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from .client import Client
from .output import out

FINAL = ("succeeded", "failed", "canceled")
POLL_S = 0.5


def _line(line: dict[str, Any]) -> Text:
    stage = line.get("stage") or ""
    style = "red" if line.get("level") == "error" else ("yellow" if line.get("level") == "warning" else None)
    return Text(f"{stage:>8} | {line.get('text', '')}", style=style or "")


def _pages(client: Client, build_id: Any, after: int) -> tuple[dict[str, Any], int]:
    page = client.get(f"builds/{build_id}/logs/", {"after": after})
    return page, int(page.get("next") or after)


def follow(client: Client, build: dict[str, Any], *, show: bool = True) -> dict[str, Any]:
    """Poll the build's log until the build is final and every line is read; returns the final build.

    `show=False` (for `--json`) waits without printing anything."""
    build_id = build["id"]
    after = 0
    label = f"{build.get('transition', 'build')} #{build.get('number', '?')}"
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[stage]}"),
        TimeElapsedColumn(),
        console=out,
        disable=not show,
    )
    with progress:
        task = progress.add_task(label, total=1.0, stage="queued")
        while True:
            page, after = _pages(client, build_id, after)
            lines = page.get("lines") or []
            for line in lines if show else ():
                progress.console.print(_line(line))
            stage = (lines[-1].get("stage") if lines else None) or page.get("status", "")
            progress.update(task, completed=float(page.get("progress") or 0), stage=stage)
            if page.get("status") in FINAL and not lines:
                if page.get("status") == "succeeded":
                    progress.update(task, completed=1.0)
                break
            if not lines:
                time.sleep(POLL_S)
    return client.get(f"builds/{build_id}/")
