"""Push a template folder as a new version: `template_push PATH --template SLUG [--activate]`."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ...services import templates as template_services
from ...services.errors import DomainError


class Command(BaseCommand):
    help = "Push a Terraform folder as a new template version, validate and publish it, optionally activate it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path")
        parser.add_argument("--template", required=True, help="template slug (created if missing)")
        parser.add_argument("--name", default="")
        parser.add_argument("--description", default="")
        parser.add_argument("--icon", default="")
        parser.add_argument("--classification", default="internal")
        parser.add_argument("--owner-team", default="")
        parser.add_argument("--tools", default="", help="comma-separated tool slugs the template offers (empty: all)")
        parser.add_argument("--changelog", default="")
        parser.add_argument("--activate", action="store_true")
        parser.add_argument("--no-publish", action="store_true", help="keep the new version a draft")
        parser.add_argument("--user", default="", help="act as this platform engineer (default: the system)")

    def handle(self, *args, **o) -> None:
        actor = None
        if o["user"]:
            actor = get_user_model().objects.filter(username=o["user"]).first()
            if actor is None:
                raise CommandError(f"No user {o['user']!r}.")
        try:
            version, created, template = template_services.template_push(
                path=Path(o["path"]),
                slug=o["template"],
                actor=actor,
                name=o["name"],
                description=o["description"],
                icon=o["icon"],
                classification=o["classification"],
                owner_team=o["owner_team"],
                tools=[t for t in o["tools"].split(",") if t],
                changelog=o["changelog"],
                publish=not o["no_publish"],
                activate=o["activate"],
            )
        except DomainError as exc:
            detail = f" {exc.errors}" if exc.errors else ""
            raise CommandError(f"{exc.message}{detail}") from exc
        verb = "created" if created else "unchanged (same content hash)"
        self.stdout.write(
            f"{template.slug} v{version.number} {verb}: {version.status}, hash {version.content_hash[:12]}"
        )
        if version.diagnostics:
            self.stdout.write(version.diagnostics)
        if version.is_active:
            self.stdout.write(self.style.SUCCESS(f"{template.slug} v{version.number} is active."))
