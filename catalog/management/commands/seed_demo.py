"""Create the demo organisation, idempotently: a second run changes nothing."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from ... import demo, demo_usage, demo_workspaces
from ...conf import demo_password, goldpath_home
from ...models import AccessGrant, AITool, GrantState, Repository, Team
from ...reports.rollup import rollup_usage
from ...services import grants as grant_services
from ...services import repositories as repository_services
from ...services import teams as team_services
from ...services import tool_versions
from ...services import tools as tool_services


class Command(BaseCommand):
    help = "Create the demo teams, users and AI tools (refuses to run with DEBUG off)."

    def handle(self, *args, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("seed_demo creates users with a known password; it refuses to run with DEBUG off.")
        created = self.seed()
        history = demo_usage.seed_usage_history(admin=get_user_model().objects.get(username="admin"))
        rollup_usage()
        if history:
            self.stdout.write(f"Usage history: {history} demo events over the last {demo_usage.DAYS} days.")
        for line in demo_workspaces.seed_golden_paths():
            self.stdout.write(f"Golden path {line}")
        self.stdout.write(self.style.SUCCESS(f"Demo organisation ready ({created} objects created)."))

    @transaction.atomic
    def seed(self) -> int:
        User = get_user_model()
        password = demo_password()
        created = 0
        admin, made = User.objects.get_or_create(
            username="admin", defaults={"email": "admin@example.com", "first_name": "Portal", "last_name": "Admin"}
        )
        if made:
            admin.set_password(password)
            admin.save()
            created += 1
        team_services._set_role(admin, "admin")
        teams: dict[str, Team] = {}
        for slug, name, description in demo.TEAMS:
            team = Team.objects.filter(slug=slug).first()
            if team is None:
                team = team_services.team_create(actor=admin, slug=slug, name=name, description=description)
                created += 1
            teams[slug] = team
        users = {}
        for username, role, member_of, manager_of, full_name in demo.USERS:
            first, _, last = full_name.partition(" ")
            user, made = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.com", "first_name": first, "last_name": last}
            )
            if made:
                user.set_password(password)
                user.save()
                created += 1
            if made or getattr(getattr(user, "profile", None), "role", None) != role:
                team_services._set_role(user, role)
            for slug in member_of:
                if not teams[slug].members.filter(pk=user.pk).exists():
                    team_services.team_member_add(team=teams[slug], actor=admin, user=user)
            for slug in manager_of:
                if not teams[slug].managers.filter(pk=user.pk).exists():
                    team_services.team_member_add(team=teams[slug], actor=admin, user=user, manager=True)
            users[username] = user
        for spec in demo.TOOLS:
            if AITool.objects.filter(slug=spec["data"]["slug"]).exists():
                continue
            proposer = users[spec["proposer"]]
            tool = tool_services.tool_propose(actor=proposer, data={**spec["data"], "owner_team": teams["platform"]})
            created += 1
            for version in spec["versions"]:
                tool_versions.tool_version_add(tool=tool, actor=admin, data=dict(version))
            if spec["status"] in ("in_review", "approved"):
                tool_services.tool_request_review(tool=tool, actor=proposer, reason="Demo: ready for review.")
            if spec["status"] == "approved":
                for reviewer in spec["approvers"]:
                    tool.refresh_from_db()
                    tool_services.tool_approve(tool=tool, actor=users[reviewer], reason="Demo: security review passed.")
        for team_slug, tool_slug, granter, classification, seats in demo.GRANTS:
            tool = AITool.objects.get(slug=tool_slug)
            if AccessGrant.objects.filter(team=teams[team_slug], tool=tool, state=GrantState.ACTIVE).exists():
                continue
            if tool.status != "approved":
                continue
            grant_services.grant_create(
                actor=users[granter],
                team=teams[team_slug],
                tool=tool,
                max_data_classification=classification,
                seats=seats,
            )
            created += 1
        created += self.seed_repository(users)
        return created

    def seed_repository(self, users: dict) -> int:
        """The demo git repository on disk (if missing) and its registration (if missing)."""
        spec = demo.REPOSITORY
        path = demo.ensure_demo_repository(goldpath_home())
        if Repository.objects.filter(slug=spec["slug"]).exists():
            return 0
        repository_services.repository_create(
            actor=users[spec["registered_by"]],
            slug=spec["slug"],
            name=spec["name"],
            url=str(path),
            teams=spec["teams"],
            data_classification=spec["data_classification"],
            default_branch=spec["default_branch"],
        )
        return 1
