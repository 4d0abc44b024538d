"""Helpers for workspace tests: templates built in the database, tools granted to a team."""

from __future__ import annotations

from catalog.models import TemplateVersion, WorkspaceTemplate
from catalog.models.workspaces import files_hash
from catalog.services import access
from tests.factories import ToolFactory

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
