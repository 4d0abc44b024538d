"""`goldpath shell WORKSPACE`: the workspace terminal, once the portal offers one over the API."""

from __future__ import annotations

from typing import Annotated

import typer

from .client import Client
from .errors import CliError
from .output import JsonOption, print_json
from .workspaces import resolve

NO_TERMINAL_EXIT = 2


def shell(
    workspace: Annotated[str, typer.Argument(help="The workspace's name (yours) or id.")],
    json_output: JsonOption = False,
) -> None:
    """Open a terminal in a workspace (not offered by the portal yet: exits 2 with a message)."""
    with Client.from_config() as client:
        found = resolve(client, workspace)
    # The portal's API has no terminal endpoint for workspaces yet: when it gains one (a `terminal` URL on the
    # workspace), this is where the CLI connects to it.
    message = (
        f"The portal at {client.url} does not offer a terminal for workspace {found['name']} "
        f"({found['status']}): workspace terminals are not available through the API yet."
    )
    if json_output:
        print_json({"workspace": found["id"], "terminal": None, "error": message})
    raise CliError(message, exit_code=NO_TERMINAL_EXIT)
