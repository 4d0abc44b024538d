"""`goldpath tools list` and `goldpath access request`: the catalog and asking for a tool."""

from __future__ import annotations

from typing import Annotated

import typer

from .client import Client
from .output import JsonOption, out, print_json, say, status, table

tools_app = typer.Typer(help="The AI-tool catalog.", no_args_is_help=True)
access_app = typer.Typer(help="Tool access for your team.", no_args_is_help=True)


@tools_app.command("list")
def tools_list(
    usable: Annotated[
        bool, typer.Option("--usable", help="Only tools you may use now (approved and granted to your team).")
    ] = False,
    tool_status: Annotated[
        list[str] | None, typer.Option("--status", help="Only tools in this lifecycle status (repeatable).")
    ] = None,
    search: Annotated[
        str | None, typer.Option("--search", "-s", help="Text to find in name, vendor, description.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """List the tools in the catalog."""
    params = {"usable": True if usable else None, "status": tool_status or None, "q": search}
    with Client.from_config() as client:
        tools = list(client.pages("tools/", params))
    if json_output:
        print_json(tools)
        return
    if not tools:
        say("No tools match." if (usable or tool_status or search) else "The catalog is empty.")
        return
    rows = [
        (
            t["slug"],
            t["name"],
            t["vendor"],
            t["kind"],
            t["risk_tier"],
            t["max_data_classification"],
            status(t["status"]),
            t.get("latest_version"),
        )
        for t in tools
    ]
    out.print(table(None, ["TOOL", "NAME", "VENDOR", "KIND", "RISK", "MAX DATA", "STATUS", "VERSION"], rows))


@access_app.command("request")
def access_request(
    tool: Annotated[str, typer.Argument(help="The tool's slug (see `goldpath tools list`).")],
    team: Annotated[str, typer.Option("--team", "-t", help="Your team's slug.")],
    why: Annotated[str, typer.Option("--why", help="Why your team needs it (platform engineers read this).")],
    json_output: JsonOption = False,
) -> None:
    """Ask platform engineers to grant a tool to your team."""
    with Client.from_config() as client:
        request = client.post("access-requests/", {"tool": tool, "team": team, "justification": why})
    if json_output:
        print_json(request)
        return
    say(f"Requested {request['tool']} for team {request['team']}: request #{request['id']} is {request['status']}.")
