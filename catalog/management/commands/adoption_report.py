"""Print the adoption report for scripts.

Usage: `manage.py adoption_report --from 2026-09-01 --to 2026-11-30 --format csv`."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ...api.usage import rows_csv
from ...reports.adoption import adoption_report, report_json
from ...reports.params import parse_params
from ...reports.rollup import rollup_usage
from ...services.errors import DomainError


class Command(BaseCommand):
    help = "Print the adoption report (rows as CSV, or the whole report as JSON), read from the rollups."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from", dest="date_from", default="")
        parser.add_argument("--to", dest="date_to", default="")
        parser.add_argument("--team", default="")
        parser.add_argument("--tool", default="")
        parser.add_argument("--granularity", default="week", choices=["day", "week", "month"])
        parser.add_argument("--format", dest="fmt", default="csv", choices=["csv", "json"])
        parser.add_argument(
            "--as-user", default="", help="report as this user (default: every team, as a system reader)"
        )
        parser.add_argument("--refresh", action="store_true", help="fold new events into the rollups first")

    def handle(self, *args, **options) -> None:
        if options["refresh"]:
            rollup_usage()
        query = {
            "from": options["date_from"],
            "to": options["date_to"],
            "team": options["team"],
            "tool": options["tool"],
            "granularity": options["granularity"],
        }
        user = _SystemReader()
        if options["as_user"]:
            user = get_user_model().objects.filter(username=options["as_user"]).first()
            if user is None:
                raise CommandError(f"No user {options['as_user']!r}.")
        try:
            report = adoption_report(user, parse_params({k: v for k, v in query.items() if v}))
        except DomainError as exc:
            raise CommandError(f"{exc.message} {exc.errors or ''}".strip()) from exc
        if options["fmt"] == "json":
            self.stdout.write(report_json(report, indent=2))
        else:
            self.stdout.write(rows_csv(report["rows"]), ending="")


class _SystemReader:
    """The command line reads every team, like an auditor (whoever runs manage.py owns the database)."""

    is_authenticated = True
    is_superuser = True
    is_active = True
    pk = None
    username = "system"
