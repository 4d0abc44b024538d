"""The `goldpath` Typer app: every command group wired in, and the console script's entry point."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from . import agents, auth, provenance, reports, templates, tools, workspaces
from .client import cli_version
from .errors import CliError
from .logs import logs
from .output import err
from .shell import shell

app = typer.Typer(
    name="goldpath",
    help="Goldpath from the terminal: AI tools, workspaces, agent runs, provenance and reports.\n\n"
    "Sign in with `goldpath login --url URL`; GOLDPATH_URL and GOLDPATH_TOKEN override the stored sign-in.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"goldpath {cli_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Goldpath command-line client."""


app.command("login")(auth.login)
app.command("logout")(auth.logout)
app.command("whoami")(auth.whoami)
app.add_typer(tools.tools_app, name="tools")
app.add_typer(tools.access_app, name="access")
app.add_typer(workspaces.app, name="workspaces")
app.command("shell")(shell)
app.add_typer(agents.app, name="agents")
app.command("logs")(logs)
app.add_typer(provenance.app, name="provenance")
app.add_typer(templates.app, name="templates")
app.add_typer(reports.app, name="reports")


def main() -> None:
    """Run the app; a CliError is one message on stderr and its exit code, never a traceback."""
    try:
        app(prog_name="goldpath")
    except CliError as exc:
        err.print(f"Error: {exc.message}", style="red", markup=False, highlight=False)
        sys.exit(exc.exit_code)
