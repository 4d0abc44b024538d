"""`goldpath shell WORKSPACE [-c COMMAND]`: the workspace's terminal over the portal's WebSocket.

The socket is `/api/v1/workspaces/{id}/terminal/` (issue 15's protocol), authenticated with the CLI's API token.

Exit codes: 0 the session ended normally (with -c: the command's own exit status); 1 refused, lost or
unreachable; 2 the workspace has no terminal to offer now (not running, or its agent not connected yet), so
scripts can start it and retry; 130 interrupted."""

from __future__ import annotations

import sys
import uuid
from typing import Annotated, Any

import typer

from . import config, terminal
from .client import API_PREFIX, Client, cli_version
from .errors import CliError
from .output import note
from .workspaces import resolve

NO_TERMINAL_EXIT = 2
INTERRUPTED_EXIT = 130


def shell(
    workspace: Annotated[str, typer.Argument(help="The workspace's name (yours) or id (or the start of it).")],
    command: Annotated[
        str | None,
        typer.Option(
            "--command", "-c", help="Run this command in the workspace, print its output, exit with its status."
        ),
    ] = None,
) -> None:
    """Open a terminal in one of your running workspaces (`exit` or Ctrl-D ends it).

    Piped standard input is typed into the shell as it comes; the session ends when it ends and output pauses.
    """
    session = config.current()
    with Client(session.url, session.token, token_from_env=session.token_from_env) as client:
        found = resolve(client, workspace)
    name = str(found.get("name") or found["id"])
    if found.get("status", "running") != "running":  # the portal would close with 4409: say so without asking
        raise not_running(found, name)
    url = terminal_url(session.url, found["id"])
    try:
        sock = terminal.open_socket(url, session.token, f"goldpath-cli/{cli_version()}")
    except terminal.HandshakeRefused as exc:
        raise CliError(_refusal(exc.status, name, session), exit_code=1) from None
    try:
        ending = _run(sock, command, name)
    except KeyboardInterrupt:
        sock.close()
        raise CliError("Interrupted: the terminal session was closed.", exit_code=INTERRUPTED_EXIT) from None
    _conclude(ending, found, name, command is not None, session.url)


def terminal_url(portal: str, workspace_id: Any) -> str:
    """ws(s)://<portal, with its path prefix>/api/v1/workspaces/<id>/terminal/; the id is checked to be a UUID
    (it came from the portal, and it becomes part of the address the token is sent to)."""
    try:
        pk = uuid.UUID(str(workspace_id))
    except ValueError:
        raise CliError(f"The portal gave a workspace id that is not a UUID: {workspace_id!r}.") from None
    scheme, sep, rest = portal.partition("://")
    ws_scheme = {"https": "wss", "http": "ws"}.get(scheme.lower())
    if not sep or ws_scheme is None:
        raise CliError(f"{portal!r} is not an http(s) URL.")
    return f"{ws_scheme}://{rest.rstrip('/')}{API_PREFIX}workspaces/{pk}/terminal/"


def not_running(found: dict[str, Any], name: str) -> CliError:
    state = found.get("status") or "not running"
    if state in ("pending", "starting"):
        hint = "its start build is still running: try again when it is running."
    elif state in ("stopping", "deleting", "deleted"):
        hint = f"it is {state}."
    else:
        hint = f"start it with `goldpath workspaces start {name} --wait`, then try again."
    return CliError(f"Workspace {name} is not running ({state}): {hint}", exit_code=NO_TERMINAL_EXIT)


def _run(sock: Any, command: str | None, name: str) -> terminal.Ending:
    stdin_fd = terminal.stdin_fd()
    stdout_fd = sys.stdout.fileno()
    sys.stdout.flush()
    with sock:
        if command is not None:
            return terminal.run_command(sock, command, stdout_fd)
        if stdin_fd is not None and sys.stdin.isatty():
            note(f"Terminal of workspace {name}: `exit` or Ctrl-D ends the session.")
            return terminal.interactive(sock, stdin_fd, stdout_fd)
        if stdin_fd is None:
            raise CliError("No standard input to read: use `-c COMMAND` to run one command.")
        return terminal.piped(sock, stdin_fd, stdout_fd)


def _refusal(status: int, name: str, session: config.Session) -> str:
    if status == 403:
        return (
            f"Only the owner of workspace {name} may open its terminal: the portal refused the connection (HTTP 403)."
        )
    if status == 401:
        source = "GOLDPATH_TOKEN" if session.token_from_env else "your stored token"
        return f"The portal refused {source}: sign in again with `goldpath login --url {session.url}`."
    if status == 426:
        return (
            f"The portal at {session.url} does not serve WebSockets (HTTP 426 Upgrade Required): "
            "it must run under an ASGI server, as `make run` does."
        )
    if status == 404:
        return (
            f"The portal at {session.url} has no workspace terminal endpoint (HTTP 404): it may be older than this CLI."
        )
    return f"The portal refused to open the terminal of workspace {name} (HTTP {status})."


def _conclude(ending: terminal.Ending, found: dict[str, Any], name: str, one_command: bool, portal: str) -> None:
    """Say how the session ended (on stderr) and exit with the matching code."""
    code = ending.code
    if code == terminal.CLOSE_NORMAL or ending.by_us:
        if one_command:
            if ending.status:
                raise typer.Exit(ending.status)
            return
        note(f"Session in workspace {name} ended.")
        return
    if code == 4403:
        raise CliError(f"Only the owner of workspace {name} may open its terminal.", exit_code=1)
    if code == 4409:
        raise not_running(found, name)
    if code == 4503:
        raise CliError(
            f"The workspace agent of {name} is not connected yet (it dials in as the workspace starts): "
            "try again in a few seconds.",
            exit_code=NO_TERMINAL_EXIT,
        )
    if code == 4410:
        raise CliError(
            f"Workspace {name} stopped (or its agent disconnected): the terminal session ended.", exit_code=1
        )
    if code == 4400:
        raise CliError("The portal did not understand a message of this CLI (close code 4400).", exit_code=1)
    if code == terminal.CLOSE_ABNORMAL:
        detail = f" ({ending.reason})" if ending.reason else ""
        raise CliError(f"The connection to the portal at {portal} was lost{detail}.", exit_code=1)
    reason = f": {ending.reason}" if ending.reason else ""
    raise CliError(f"The terminal of workspace {name} closed with code {code}{reason}.", exit_code=1)
