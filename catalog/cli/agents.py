"""`goldpath agents run|accept`: fan a prompt out to agents, watch the runs live, accept one result."""

from __future__ import annotations

import shlex
import time
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .client import Client
from .errors import CliError
from .output import JsonOption, duration, err, out, print_json, say, status, text

app = typer.Typer(help="Parallel agent runs.", no_args_is_help=True)

GROUP_FINAL = ("finished", "canceled")
POLL_S = 1.0


def parse_agent(spec: str) -> dict[str, Any]:
    """TOOL[@VERSION][:COUNT] -> the API's agent entry."""
    head, _, count = spec.partition(":")
    tool, _, version = head.partition("@")
    if not tool:
        raise CliError(f"--agent {spec!r}: write it as TOOL, TOOL:COUNT or TOOL@VERSION:COUNT.", exit_code=2)
    entry: dict[str, Any] = {"tool": tool}
    if version:
        entry["version"] = version
    if count:
        if not count.isdigit() or not 1 <= int(count) <= 100:
            raise CliError(f"--agent {spec!r}: COUNT must be a whole number from 1 to 100.", exit_code=2)
        entry["count"] = int(count)
    return entry


def _diff(run: dict[str, Any]) -> str:
    stat = run.get("diff_stat") or {}
    if not stat:
        return "-"
    return f"{len(stat.get('files') or [])} files +{stat.get('insertions', 0)} -{stat.get('deletions', 0)}"


def _usage(run: dict[str, Any]) -> tuple[str, str]:
    usage = run.get("usage") or {}
    tokens = int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
    return (str(tokens) if tokens else "-", f"${usage['cost_usd']}" if usage.get("model_calls") else "-")


def render(group: dict[str, Any]) -> Group:
    grid = Table(show_edge=False, header_style="bold", pad_edge=False)
    for column in ("RUN", "#", "TOOL", "MODEL", "STATUS", "TIME", "DIFF", "TESTS", "TOKENS", "COST", "PROGRESS"):
        grid.add_column(column, overflow="fold")
    for run in group.get("runs") or []:
        tokens, cost = _usage(run)
        tests = run.get("test_exit_code")
        grid.add_row(
            Text(str(run["id"])),
            Text(str(run["index"])),
            Text(f"{run['tool']}@{run.get('tool_version') or '?'}"),
            Text(text(run.get("model"))),
            status(run["status"]),
            Text(duration(run.get("duration_s"))),
            Text(_diff(run)),
            Text("-" if tests is None else ("passed" if tests == 0 else f"failed ({tests})")),
            Text(tokens),
            Text(cost),
            Text(text(run.get("error") or run.get("progress"))[:60]),
        )
    counts = ", ".join(f"{n} {s}" for s, n in sorted((group.get("counts") or {}).items()))
    title = Text(
        f"Agent group {group['id']} on {group['repository']}: {group['status']} ({counts or 'no runs'})", style="bold"
    )
    return Group(title, grid)


def watch(client: Client, group: dict[str, Any], *, show: bool) -> dict[str, Any]:
    """Poll the group until every run has ended; a live table on a terminal, the final table otherwise."""
    with Live(render(group), console=out, refresh_per_second=4, transient=False) if show else _Quiet() as live:
        while group["status"] not in GROUP_FINAL:
            time.sleep(POLL_S)
            group = client.get(f"agent-groups/{group['id']}/")
            live.update(render(group))
    if show and not out.is_terminal:
        out.line()  # Live's last render to a file or pipe ends without a newline
    return group


class _Quiet:
    """A stand-in for Live when nothing is shown (`--json`)."""

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, _renderable: object) -> None:
        return None


@app.command("run")
def run(
    prompt: Annotated[str, typer.Argument(help="What the agents should do.")],
    repo: Annotated[str, typer.Option("--repo", "-r", help="A registered repository's slug.")],
    agent: Annotated[
        list[str], typer.Option("--agent", "-a", help="TOOL[@VERSION][:COUNT], e.g. claude-code:3 (repeatable).")
    ],
    base_ref: Annotated[
        str | None, typer.Option("--base-ref", help="Branch, tag or commit (default: its branch).")
    ] = None,
    test: Annotated[
        str | None,
        typer.Option("--test", help="A test command run after each agent, e.g. 'pytest -q' (never by a shell)."),
    ] = None,
    time_limit: Annotated[int | None, typer.Option("--time-limit", help="Seconds each run may take.")] = None,
    network: Annotated[str | None, typer.Option("--network", help="none (default) or allow_listed.")] = None,
    team: Annotated[str | None, typer.Option("--team", help="The team to run for (default: yours).")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Start the runs and return at once.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Run one prompt with several agents side by side and watch them until all finish.

    Exits 0 when at least one run succeeded, 1 when none did."""
    body: dict[str, Any] = {"prompt": prompt, "repository": repo, "agents": [parse_agent(a) for a in agent]}
    optional = {"base_ref": base_ref, "time_limit_s": time_limit, "network_policy": network, "team": team}
    body.update({k: v for k, v in optional.items() if v is not None})
    if test:
        body["test_command"] = shlex.split(test)
    with Client.from_config() as client:
        group = client.post("agent-groups/", body)
        if no_wait:
            if json_output:
                print_json(group)
            else:
                say(
                    f"Started agent group {group['id']} with {len(group.get('runs') or [])} runs. "
                    f"Watch a run with `goldpath logs RUN -f`."
                )
            return
        group = watch(client, group, show=not json_output)
    if json_output:
        print_json(group)
    succeeded = [r for r in group.get("runs") or [] if r["status"] == "succeeded"]
    if not json_output and succeeded:
        say(f"Accept a result with: goldpath agents accept {group['id']} RUN  (e.g. {succeeded[0]['id']})")
    if not succeeded:
        raise CliError(f"No run of agent group {group['id']} succeeded.")


@app.command("accept")
def accept(
    group: Annotated[int, typer.Argument(help="The agent group's id.")],
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="The id of the run whose result you accept.")],
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Do not wait for the commit.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Accept one run's result: the portal commits it to a branch and signs its provenance."""
    with Client.from_config() as client:
        data = client.post(f"agent-groups/{group}/accept/", {"run": run_id})
        if not no_wait:
            with err.status("Committing the accepted result...") if not json_output else _Quiet():
                while data.get("accept_status") == "pending":
                    time.sleep(0.5)
                    data = client.get(f"agent-groups/{group}/")
    if json_output:
        print_json(data)
    elif data.get("accept_status") == "done":
        commit = data.get("accepted_commit") or ""
        say(f"Accepted run {run_id}: commit {commit} on branch {data.get('accepted_branch')}.")
        say(f"Check its provenance with: goldpath provenance verify {commit[:12]}")
    elif data.get("accept_status") == "pending":
        say(f"Accepted run {run_id}; the portal is committing it.")
    if data.get("accept_status") == "failed":
        raise CliError(f"Accepting run {run_id} failed: {data.get('accept_error') or 'no reason given'}")
