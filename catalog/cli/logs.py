"""`goldpath logs RUN [-f]`: an agent run's output, followed until the run ends."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from .client import Client
from .output import JsonOption, print_json

RUN_FINAL = ("succeeded", "failed", "canceled", "timed_out")
POLL_S = 0.5


def logs(
    run: Annotated[int, typer.Argument(help="The agent run's id (see `goldpath agents run`).")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until the run ends.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Print an agent run's log."""
    collected: list[dict[str, Any]] = []
    after = 0
    with Client.from_config() as client:
        while True:
            page = client.get(f"agent-runs/{run}/logs/", {"after": after})
            lines = page.get("lines") or []
            after = int(page.get("next_after") or after)
            if json_output:
                collected += lines
            else:
                # one stream, in the run's order, so `goldpath logs RUN > run.log` keeps everything
                sys.stdout.writelines(f"{line.get('text', '')}\n" for line in lines)
                sys.stdout.flush()
            if lines:
                continue  # more may be waiting: a page holds at most 1000 lines
            if not follow or page.get("status") in RUN_FINAL:
                break
            time.sleep(POLL_S)
    if json_output:
        print_json({"run": run, "status": page.get("status"), "lines": collected})
