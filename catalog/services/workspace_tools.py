"""Tools inside a workspace: what a start build hands the workspace so its approved tools run.

They run from their installed runtimes and reach models only through Goldpath's gateway, with a credential of
this start.

`workspace_tool_session(workspace, build)` (the worker calls it while it builds the session spec of a start,
catalog.workspace_session) decides every chosen tool again (the policy of now, for the workspace's owner,
classification and template), picks each tool's version (the build's snapshot when still approved, else its
newest approved one), installs missing runtimes (catalog.runtimes, as agent runs do) and rotates the
workspace's gateway key (`workspace_gateway_key_rotate`: the previous key stops working at once). The answer:

- "gateway_url": where the workspace's egress proxy relays `/v1/...` (the web tier; GatewayRoute.from_url);
- "gateway_key": the new key (`gpw_...`, in clear once; only its SHA-256 is stored);
- "env": non-secret settings pointing each CLI at the gateway through the sandbox's proxy port
  (`http://127.0.0.1:3128`, as agent runs: catalog.agents.launch) and the tool versions' own environment;
- "secrets": the key under every variable the CLIs read an API key from (never a vendor key);
- "runtimes": tool slug -> installed runtime folder (SandboxRunner(runtimes=...) binds each read-only at
  /opt/goldpath/tools/<slug> and puts its commands on PATH);
- "tools": [{slug, version, runtime}] of the tools set up (runtime False: none installed, `runtime_error` why);
- "denied": [{slug, reasons}] of chosen tools the policy (or a missing approved version) keeps out now.

The gateway checks the key, the workspace's status and the policy again on every call (catalog.gateway).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import audit
from ..agents.launch import GATEWAY_INSIDE, gateway_env, gateway_secrets
from ..conf import goldpath_settings
from ..gateway.workspaces import PREFIX
from ..models import AITool, ToolVersion, VersionReview, Workspace, WorkspaceBuild
from ..models.gateway import WorkspaceGatewayKey
from ..policy import decide
from .workspace_rules import policy_context

logger = logging.getLogger(__name__)

# per CLI (its usage format): settings a developer's interactive session needs besides the base URLs
CLI_ENV = {
    "claude-stream-json": {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "ANTHROPIC_MODEL": "{model}"},
    "codex-json": {},  # Codex reads OPENAI_BASE_URL (gateway_env) and its key from CODEX_API_KEY
    "aider-text": {
        "AIDER_OPENAI_API_BASE": f"{GATEWAY_INSIDE}/v1",
        "AIDER_MODEL": "openai/{model}",
        "AIDER_WEAK_MODEL": "openai/{model}",
        "AIDER_CHECK_UPDATE": "false",
        "AIDER_ANALYTICS_DISABLE": "true",
    },
}


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def workspace_gateway_key_rotate(
    *, workspace: Workspace, build: WorkspaceBuild | None = None, tool_versions: list[ToolVersion], actor: Any = None
) -> str:
    """A new gateway key for this start of the workspace, for these tool versions; every earlier key is revoked
    in the same transaction. Returns the key in clear (once)."""
    raw = PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        Workspace.objects.select_for_update().filter(pk=workspace.pk).values_list("pk", flat=True).first()
        revoked = WorkspaceGatewayKey.objects.filter(workspace=workspace, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        key = WorkspaceGatewayKey.objects.create(
            workspace=workspace, build=build, token_sha256=_hash(raw), tool_versions=[v.pk for v in tool_versions]
        )
        audit.record(
            actor=actor,
            verb="workspace.gateway_key_rotated",
            target=workspace,
            payload={
                "key": key.pk,
                "build": getattr(build, "pk", None),
                "tools": [f"{v.tool.slug}@{v.version}" for v in tool_versions],
                "revoked": revoked,
            },
        )
    return raw


def workspace_gateway_key_revoke(*, workspace: Workspace, actor: Any = None) -> int:
    """Revoke the workspace's live gateway key (a stop or delete); returns how many were revoked."""
    with transaction.atomic():
        revoked = WorkspaceGatewayKey.objects.filter(workspace=workspace, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if revoked:
            audit.record(
                actor=actor, verb="workspace.gateway_key_revoked", target=workspace, payload={"revoked": revoked}
            )
    return revoked


def _version_for(tool: AITool, wanted: str | None) -> ToolVersion | None:
    versions = ToolVersion.objects.select_related("tool").filter(tool=tool, review_state=VersionReview.APPROVED)
    if wanted:
        exact = versions.filter(version=wanted).first()
        if exact is not None:
            return exact
    return versions.order_by("-created_at", "-pk").first()


def _chosen(workspace: Workspace, build: WorkspaceBuild | None) -> list[tuple[str, str | None]]:
    """(slug, version) of the tools chosen for the workspace: the build's snapshot, else the workspace's tools."""
    if build is not None and isinstance(build.tools, list) and build.tools:
        return [(str(t.get("slug")), t.get("version")) for t in build.tools if isinstance(t, dict) and t.get("slug")]
    return [(t.slug, None) for t in workspace.tools.order_by("slug")]


def allowed_tool_versions(workspace: Workspace, build: WorkspaceBuild | None) -> tuple[list[ToolVersion], list[dict]]:
    """The chosen tools' versions the policy allows now, and the denials ({slug, reasons})."""
    context = policy_context(workspace.template, workspace.classification)
    tools = {t.slug: t for t in AITool.objects.filter(slug__in=[s for s, _ in _chosen(workspace, build)])}
    allowed: list[ToolVersion] = []
    denied: list[dict] = []
    for slug, wanted in _chosen(workspace, build):
        tool = tools.get(slug)
        if tool is None:
            denied.append({"slug": slug, "reasons": [{"code": "missing", "message": "the tool no longer exists"}]})
            continue
        decision = decide(workspace.owner, tool, context)
        if not decision.allowed:
            denied.append({"slug": slug, "reasons": [r.as_dict() for r in decision.reasons]})
            continue
        version = _version_for(tool, wanted)
        if version is None:
            reason = {"code": "no_approved_version", "message": f"{slug} has no approved version"}
            denied.append({"slug": slug, "reasons": [reason]})
            continue
        allowed.append(version)
    return allowed, denied


def _default_model(version: ToolVersion) -> str:
    return next((str(n) for n in version.model_names or [] if "*" not in str(n)), "")


def tool_session_env(versions: list[ToolVersion]) -> dict[str, str]:
    """Non-secret environment: the gateway base URLs (as agent runs get them), then each CLI's interactive
    settings and its version's own environment ({model}: its first model, {gateway}: the proxy port); the first
    tool (by slug) wins a name two tools set. Names of the secrets are never set here."""
    env = dict(gateway_env())
    env["GOLDPATH_TOOLS"] = ",".join(v.tool.slug for v in versions)
    reserved = set(gateway_secrets("x"))
    for version in versions:
        model = _default_model(version)
        extra = {**CLI_ENV.get(version.usage_format, {}), **{str(k): str(v) for k, v in (version.env or {}).items()}}
        for name, value in extra.items():
            if name in reserved or name in env:
                continue
            env[name] = value.replace("{model}", model).replace("{gateway}", GATEWAY_INSIDE)
    return env


def _runtime(version: ToolVersion) -> tuple[str | None, str]:
    """(installed runtime folder or None, why not)."""
    from ..runtimes import RuntimeInstallError, ensure_installed

    try:
        path = ensure_installed(version)
    except RuntimeInstallError as exc:
        logger.warning("workspace tools: %s@%s: %s", version.tool.slug, version.version, exc)
        return None, str(exc)
    return (str(path), "") if path is not None else (None, "built in: no runtime")


def workspace_tool_session(workspace: Workspace, build: WorkspaceBuild | None) -> dict[str, Any]:
    """Everything the workspace's tools need for this start (see the module docstring); rotates the gateway key."""
    workspace = Workspace.objects.select_related("owner", "team", "template").get(pk=workspace.pk)
    versions, denied = allowed_tool_versions(workspace, build)
    runtimes: dict[str, str] = {}
    tools: list[dict[str, Any]] = []
    for version in versions:
        path, why = _runtime(version)
        entry: dict[str, Any] = {"slug": version.tool.slug, "version": version.version, "runtime": path is not None}
        if path is not None:
            runtimes[version.tool.slug] = path
        else:
            entry["runtime_error"] = why
        tools.append(entry)
    key = workspace_gateway_key_rotate(workspace=workspace, build=build, tool_versions=versions)
    return {
        "gateway_url": str(goldpath_settings.GATEWAY_URL or goldpath_settings.PORTAL_URL),
        "gateway_key": key,
        "env": tool_session_env(versions),
        "secrets": gateway_secrets(key),
        "runtimes": runtimes,
        "tools": tools,
        "denied": denied,
    }
