"""`goldpath reports adoption`: the adoption report as a table, JSON or the portal's CSV."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Annotated

import typer

from .client import Client
from .errors import CliError
from .output import JsonOption, out, print_json, say, table

app = typer.Typer(help="Reports (managers, platform engineers, auditors).", no_args_is_help=True)

COLUMNS = [
    ("period_start", "PERIOD"),
    ("team", "TEAM"),
    ("tool", "TOOL"),
    ("active_users", "ACTIVE"),
    ("team_members", "MEMBERS"),
    ("adoption_rate", "ADOPTION"),
    ("workspaces_created", "WORKSPACES"),
    ("agent_runs", "AGENT RUNS"),
    ("agent_acceptance_rate", "ACCEPTED"),
    ("policy_denials", "DENIALS"),
    ("estimated_cost", "COST"),
]


def _date(value: str | None, flag: str) -> str | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise CliError(f"{flag} {value!r}: give a date as YYYY-MM-DD.", exit_code=2) from exc


def _rate(value: object) -> str:
    return "-" if value is None else f"{float(value) * 100:.0f}%"


@app.command("adoption")
def adoption(
    date_from: Annotated[
        str | None, typer.Option("--from", help="First day, YYYY-MM-DD (default: 12 weeks back).")
    ] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD (default: today).")] = None,
    team: Annotated[str | None, typer.Option("--team", help="Only this team.")] = None,
    tool: Annotated[str | None, typer.Option("--tool", help="Only this tool.")] = None,
    granularity: Annotated[str | None, typer.Option("--granularity", help="day, week (default) or month.")] = None,
    csv: Annotated[bool, typer.Option("--csv", help="Print the report's rows as CSV (the portal's export).")] = False,
    json_output: JsonOption = False,
) -> None:
    """Adoption per period, team and tool."""
    params = {
        "from": _date(date_from, "--from"),
        "to": _date(date_to, "--to"),
        "team": team,
        "tool": tool,
        "granularity": granularity,
    }
    with Client.from_config() as client:
        if csv:
            params["format"] = "csv"
            response = client.request(
                "GET",
                "reports/adoption/",
                params={k: v for k, v in params.items() if v},
                headers={"Accept": "text/csv"},
            )
            sys.stdout.write(response.text)
            return
        report = client.get("reports/adoption/", params)
    if json_output:
        print_json(report)
        return
    rows = report.get("rows") or []
    say(
        f"Adoption {report['from']} to {report['to']} by {report['granularity']}"
        + (" (includes demo data)" if report.get("demo_data") else "")
    )
    if not rows:
        say("No activity in this range.")
        return
    rates = ("adoption_rate", "agent_acceptance_rate")
    cells = [[_rate(r.get(k)) if k in rates else r.get(k) for k, _ in COLUMNS] for r in rows]
    out.print(table(None, [label for _, label in COLUMNS], cells))
