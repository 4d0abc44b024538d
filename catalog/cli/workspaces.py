"""`goldpath workspaces list|create|start|stop|delete`: workspaces from golden-path templates."""

from __future__ import annotations

import json
import secrets
import sys
from typing import Annotated, Any

import typer

from . import builds
from .client import Client
from .errors import ApiError, CliError
from .output import JsonOption, duration, note, out, print_json, say, status, table

app = typer.Typer(help="Your workspaces.", no_args_is_help=True)

WaitOption = Annotated[
    bool, typer.Option("--wait", "-w", help="Follow the build log live until it ends; exit 1 when it fails.")
]
WorkspaceArg = Annotated[str, typer.Argument(help="The workspace's name (yours) or id (or the start of it).")]

TRUE = ("true", "yes", "on", "1")
FALSE = ("false", "no", "off", "0")


def resolve(client: Client, ref: str) -> dict[str, Any]:
    """A workspace by your own workspace's name, its id, or an unambiguous start of its id."""
    mine = list(client.pages("workspaces/", {"mine": True}))
    named = [w for w in mine if w["name"] == ref]
    if named:
        return named[0]
    if len(ref) == 36:
        return client.get(f"workspaces/{ref}/")
    prefixed = [w for w in client.pages("workspaces/") if str(w["id"]).startswith(ref)] if len(ref) >= 4 else []
    if len(prefixed) == 1:
        return prefixed[0]
    if len(prefixed) > 1:
        raise CliError(f"{ref!r} is the start of several workspace ids: give more of it.")
    raise CliError(f"No workspace named {ref!r} (or with that id) that you can see.")


def _coerce(name: str, raw: str, kind: str | None) -> Any:
    """A `--param` value as the template's variable type wants it (Terraform types)."""
    t = (kind or "string").replace(" ", "")
    try:
        if t == "number":
            return int(raw) if raw.lstrip("-").isdigit() else float(raw)
        if t == "bool":
            if raw.lower() not in TRUE + FALSE:
                raise ValueError("give true or false")
            return raw.lower() in TRUE
        if t.startswith(("list(", "set(", "tuple(", "map(", "object(")):
            return json.loads(raw)
    except ValueError as exc:
        raise CliError(f"--param {name}={raw}: {name} is a {t} ({exc}).") from exc
    return raw


def parameters(client: Client, template: str, pairs: list[str]) -> dict[str, Any]:
    try:
        info = client.get(f"templates/{template}/")
    except ApiError as exc:
        if exc.status == 404:
            raise CliError(f"No template {template!r} (see the portal's template gallery).") from exc
        raise
    types = {p["name"]: p.get("type") for p in ((info.get("active_version") or {}).get("parameters") or [])}
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--param {pair!r}: write it as name=value.")
        values[name] = _coerce(name, raw, types.get(name))
    return values


def _settle(client: Client, workspace: dict[str, Any], json_output: bool) -> None:
    """Follow the workspace's newest build; exit 1 when it did not succeed."""
    build = workspace.get("latest_build")
    if not build:
        raise CliError("The portal did not say which build it started.")
    final = builds.follow(client, build, show=not json_output)
    current = client.get(f"workspaces/{workspace['id']}/")
    if json_output:
        print_json({"workspace": current, "build": final})
    elif final["status"] == "succeeded":
        say(
            f"Workspace {current['name']} is {current['status']} "
            f"({final['transition']} build #{final['number']} took {duration(final.get('duration_s'))})."
        )
        for key, value in (current.get("outputs") or {}).items():
            say(f"  {key} = {value}")
    if final["status"] != "succeeded":
        raise CliError(
            f"Build #{final['number']} ({final['transition']}) {final['status']}: {final.get('error') or 'no error message'}"
        )


def _accepted(client: Client, workspace: dict[str, Any], wait: bool, json_output: bool, verb: str) -> None:
    if wait:
        _settle(client, workspace, json_output)
    elif json_output:
        print_json(workspace)
    else:
        build = workspace.get("latest_build") or {}
        say(
            f"{verb} {workspace['name']}: build #{build.get('number', '?')} is {build.get('status', 'queued')}. "
            f"Follow it with --wait."
        )


@app.command("list")
def list_workspaces(
    mine: Annotated[bool, typer.Option("--mine", help="Only your own workspaces.")] = False,
    include_deleted: Annotated[bool, typer.Option("--all", help="Include deleted workspaces.")] = False,
    json_output: JsonOption = False,
) -> None:
    """List the workspaces you can see."""
    with Client.from_config() as client:
        items = list(client.pages("workspaces/", {"mine": mine or None, "include_deleted": include_deleted or None}))
    if json_output:
        print_json(items)
        return
    if not items:
        say("No workspaces. Create one with `goldpath workspaces create --template SLUG`.")
        return
    rows = []
    for w in items:
        build = w.get("latest_build") or {}
        last = f"{build.get('transition')} {build.get('status')}" if build else "-"
        rows.append(
            (
                str(w["id"])[:8],
                w["name"],
                w["owner"],
                f"{w['template']} v{w['template_version']}",
                status(w["status"]),
                last,
                ", ".join(w.get("tools") or []) or "-",
            )
        )
    out.print(table(None, ["ID", "NAME", "OWNER", "TEMPLATE", "STATUS", "LAST BUILD", "TOOLS"], rows))


@app.command("create")
def create(
    template: Annotated[str, typer.Option("--template", "-t", help="The template's slug.")],
    name: Annotated[str | None, typer.Option("--name", "-n", help="A name (default: TEMPLATE-xxxx).")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A template parameter as name=value (repeatable).")
    ] = None,
    tool: Annotated[list[str] | None, typer.Option("--tool", help="An AI tool to add (repeatable).")] = None,
    ttl_hours: Annotated[int | None, typer.Option("--ttl-hours", help="Stop it after this many idle hours.")] = None,
    wait: WaitOption = False,
    json_output: JsonOption = False,
) -> None:
    """Create a workspace from a template and start it."""
    with Client.from_config() as client:
        body = {
            "name": name or f"{template}-{secrets.token_hex(2)}",
            "template": template,
            "parameters": parameters(client, template, param or []),
            "tools": tool or [],
        }
        if ttl_hours is not None:
            body["ttl_hours"] = ttl_hours
        workspace = client.post("workspaces/", body)
        if not json_output:
            note(f"Created workspace {workspace['name']} ({workspace['id']}).")
        _accepted(client, workspace, wait, json_output, "Starting")


def _transition(ref: str, verb: str, wait: bool, json_output: bool) -> None:
    with Client.from_config() as client:
        workspace = resolve(client, ref)
        if verb == "delete":
            workspace = client.delete(f"workspaces/{workspace['id']}/")
        else:
            workspace = client.post(f"workspaces/{workspace['id']}/{verb}/")
        _accepted(client, workspace, wait, json_output, {"start": "Starting", "stop": "Stopping"}.get(verb, "Deleting"))


@app.command("start")
def start(workspace: WorkspaceArg, wait: WaitOption = False, json_output: JsonOption = False) -> None:
    """Start a stopped workspace."""
    _transition(workspace, "start", wait, json_output)


@app.command("stop")
def stop(workspace: WorkspaceArg, wait: WaitOption = False, json_output: JsonOption = False) -> None:
    """Stop a workspace (its files are kept)."""
    _transition(workspace, "stop", wait, json_output)


@app.command("delete")
def delete(
    workspace: WorkspaceArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    wait: WaitOption = False,
    json_output: JsonOption = False,
) -> None:
    """Destroy a workspace and everything its template made."""
    if not yes:
        if not sys.stdin.isatty():
            raise CliError("Deleting destroys the workspace: add --yes to confirm.", exit_code=2)
        typer.confirm(f"Destroy workspace {workspace}?", abort=True)
    _transition(workspace, "delete", wait, json_output)
