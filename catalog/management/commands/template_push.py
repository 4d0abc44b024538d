"""Push a template folder as a new version: `template_push PATH --template SLUG [--activate]`."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ...models import AITool, Team, TemplateVersion, TemplateVersionStatus, WorkspaceTemplate
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
            version, created, template = push(
                Path(o["path"]),
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


def push(
    path: Path,
    *,
    slug: str,
    actor=None,
    name: str = "",
    description: str = "",
    icon: str = "",
    classification: str = "internal",
    owner_team: str = "",
    tools: list[str] | None = None,
    changelog: str = "",
    publish: bool = True,
    activate: bool = False,
) -> tuple[TemplateVersion, bool, WorkspaceTemplate]:
    """Idempotent: the same folder pushed again finds its version by content hash."""
    files = template_services.read_folder(path)
    template = WorkspaceTemplate.objects.filter(slug=slug).first()
    if template is None:
        team = Team.objects.filter(slug=owner_team).first() if owner_team else None
        template = template_services.template_create(
            actor=actor,
            slug=slug,
            name=name or slug.replace("-", " ").title(),
            description=description,
            icon=icon,
            owner_team=team,
            data_classification=classification,
            tools=list(AITool.objects.filter(slug__in=tools or [])),
        )
    version, created = template_services.template_version_create(
        template=template, actor=actor, files=files, changelog=changelog
    )
    if publish and version.status == TemplateVersionStatus.DRAFT and created:
        template_services.template_version_publish(version=version, actor=actor, inline=True)
        version.refresh_from_db()
    if activate and version.status == TemplateVersionStatus.PUBLISHED and not version.is_active:
        template_services.template_version_activate(version=version, actor=actor)
        version.refresh_from_db()
    template.refresh_from_db()
    return version, created, template
