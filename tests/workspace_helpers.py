"""Helpers for workspace tests: templates built in the database, tools granted to a team."""

from __future__ import annotations

from pathlib import Path

from catalog.models import TemplateVersion, Workspace, WorkspaceBuild, WorkspaceTemplate
from catalog.models.workspaces import files_hash
from catalog.services import access
from catalog.services import templates as template_services
from tests.factories import ToolFactory

GOLDEN = Path(__file__).resolve().parent.parent / "catalog" / "golden_paths"

SANDBOX_PARAMETERS = [
    {
        "name": "repository",
        "type": "string",
        "default": None,
        "description": "a registered repository (slug)",
        "sensitive": False,
        "required": True,
    },
    {"name": "ref", "type": "string", "default": "main", "description": "", "sensitive": False, "required": False},
    {"name": "display_name", "type": "string", "default": "", "description": "", "sensitive": False, "required": False},
    {"name": "memory_mb", "type": "number", "default": 2048, "description": "", "sensitive": False, "required": False},
    {
        "name": "allow_network",
        "type": "bool",
        "default": False,
        "description": "",
        "sensitive": False,
        "required": False,
    },
    {
        "name": "goldpath_workspace_id",
        "type": "string",
        "default": None,
        "description": "",
        "sensitive": False,
        "required": True,
    },
]


def published_template(slug="sandbox", parameters=None, files=None, tools=(), classification="internal"):
    """A template with one published, active version (no Terraform run: for API tests)."""
    template = WorkspaceTemplate.objects.create(slug=slug, name=slug.title(), data_classification=classification)
    if tools:
        template.tools.set(tools)
    files = files or {"main.tf": f"# {slug}\n"}
    version = TemplateVersion.objects.create(
        template=template,
        number=1,
        files=files,
        content_hash=files_hash(files),
        status="published",
        parameters=SANDBOX_PARAMETERS if parameters is None else parameters,
    )
    template.active_version = version
    template.save()
    return template


def granted_tools(people, teams, team="payments"):
    """claude-code and aider approved and granted to `team`; copilot approved but not granted."""
    tools = {
        "claude-code": ToolFactory(slug="claude-code", name="Claude Code", status="approved"),
        "aider": ToolFactory(slug="aider", name="Aider", status="approved"),
        "copilot": ToolFactory(slug="copilot", name="Copilot", status="approved"),
    }
    for slug in ("claude-code", "aider"):
        access.grant_create(actor=people["bob"], team=teams[team], tool=tools[slug])
    return tools


def sample_repository(people, *, slug="sample", teams=("payments",), classification="internal"):
    """The registered repository `slug`, registered on first use by a platform engineer: a real local git
    repository under GOLDPATH_HOME/repositories, so builds can resolve (and clone) it. Workspaces name it by slug."""
    from catalog.models import Repository
    from tests.agent_helpers import make_repo, register

    existing = Repository.objects.filter(slug=slug).first()
    if existing is not None:
        return existing
    return register(make_repo(), people, slug=slug, teams=teams, classification=classification)


def running_workspace(people, teams, template=None) -> Workspace:
    """alice's workspace row, running (no build: for page, API and socket tests)."""
    template = template or published_template()
    return Workspace.objects.create(
        name="dev",
        owner=people["alice"],
        team=teams["payments"],
        template=template,
        template_version=template.active_version,
        classification="internal",
        status="running",
    )


def publish_local_sandbox(actor=None, *, record_sessions: bool = False) -> WorkspaceTemplate:
    """The shipped local-sandbox golden path, validated by real Terraform, published and active."""
    files = {f.name: f.read_text() for f in sorted((GOLDEN / "local-sandbox").glob("*.tf"))}
    template = template_services.template_create(actor=actor, slug="local-sandbox", name="Local sandbox")
    version, _ = template_services.template_version_create(template=template, actor=actor, files=files)
    template_services.validate_and_publish(version.pk)
    version.refresh_from_db()
    assert version.status == "published", version.diagnostics
    template_services.template_version_activate(version=version, actor=actor)
    template.refresh_from_db()
    if record_sessions:
        template.record_sessions = True
        template.save(update_fields=["record_sessions"])
    return template


def settled(ws_id, timeout: float = 120) -> Workspace:
    """The workspace once no build of it is pending or running."""
    from tests.conftest import wait_for

    def done():
        if WorkspaceBuild.objects.filter(workspace_id=ws_id, status__in=["pending", "running"]).exists():
            return None
        return Workspace.objects.get(pk=ws_id)

    return wait_for(done, timeout, message="the build to finish")
