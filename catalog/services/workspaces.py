"""Workspaces and their builds: create, start, stop, update, delete, cancel.

Every transition locks the workspace row, refuses (409) while another build is pending or running,
creates the build row and sends its task on commit. The partial unique constraint
`one_active_build_per_workspace` backs the lock up: a race that slips past it becomes a 409, never two builds.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import audit, permissions
from ..conf import goldpath_settings
from ..gitrefs import ref_error
from ..models import (
    ACTIVE_BUILD_STATUSES,
    BUILTIN_VARIABLES,
    AITool,
    BuildStatus,
    DataClassification,
    Repository,
    Team,
    TeamQuota,
    TemplateVersion,
    TemplateVersionStatus,
    Transition,
    Workspace,
    WorkspaceBuild,
    WorkspaceStatus,
    WorkspaceTemplate,
)
from ..policy import PolicyContext, decide_many
from ..usage import record_usage
from .errors import InvalidInput, NotPermitted, QuotaExceeded, TransitionNotAllowed
from .repositories import repository_for_use, repository_use_denied

W = WorkspaceStatus
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
REF_PARAMETERS = frozenset({"ref"})  # template variables whose value must be a git ref name or commit sha
REPOSITORY_PARAMETER = "repository"  # a template variable of this name takes a registered repository's slug

# transition -> (workspace states it may start from, state while the build runs)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({W.STOPPED, W.FAILED}), W.STARTING),
    "stop": (frozenset({W.RUNNING, W.FAILED}), W.STOPPING),
    "update": (frozenset({W.RUNNING, W.STOPPED, W.FAILED}), W.STARTING),
    "delete": (frozenset({W.PENDING, W.RUNNING, W.STOPPED, W.FAILED}), W.DELETING),
}


def allowed_actions(workspace: Workspace, *, busy: bool | None = None) -> list[str]:
    if busy is None:
        busy = workspace.builds.filter(status__in=ACTIVE_BUILD_STATUSES).exists()
    if busy:
        return []
    return [name for name, (sources, _) in TRANSITIONS.items() if workspace.status in sources]


# --- parameters ---------------------------------------------------------------------------------
def _check_type(tf_type: str, value: Any) -> str | None:
    t = (tf_type or "any").replace(" ", "")
    if t == "any":
        return None
    if t == "string":
        return None if isinstance(value, str) else "Must be a string."
    if t == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "Must be a number."
    if t == "bool":
        return None if isinstance(value, bool) else "Must be true or false."
    if t.startswith(("list(", "set(", "tuple(")):
        if not isinstance(value, list):
            return "Must be a list."
        inner = t[t.index("(") + 1 : -1]
        if not t.startswith("tuple(") and inner:
            for item in value:
                err = _check_type(inner, item)
                if err:
                    return f"Every item: {err}"
        return None
    if t.startswith(("map(", "object(")):
        return None if isinstance(value, dict) else "Must be an object."
    return None


def validate_parameters(version: TemplateVersion, values: Any) -> dict[str, Any]:
    """Check values against the version's parameter schema; 400 with one message per field."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise InvalidInput("parameters must be an object.", errors={"parameters": ["Must be an object."]})
    schema = {p["name"]: p for p in version.form_parameters}
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for name in values:
        if name in BUILTIN_VARIABLES:
            errors[name] = ["Filled by the portal; it cannot be set."]
        elif name not in schema:
            errors[name] = ["Unknown parameter."]
    for name, spec in schema.items():
        if name not in values:
            if spec.get("required"):
                errors[name] = ["This parameter is required."]
            continue
        value = values[name]
        if value is None and spec.get("required"):
            errors[name] = ["This parameter is required."]
            continue
        err = _check_type(spec.get("type", "any"), value)
        if name in REF_PARAMETERS and value is not None and not err:
            err = ref_error(value)  # a ref reaches git: never an option such as --orphan=x
        if err:
            errors[name] = [err]
        elif spec.get("required") and isinstance(value, str) and not value.strip():
            errors[name] = ["This parameter is required."]
        elif isinstance(value, str) and len(value) > 10_000:
            errors[name] = ["At most 10000 characters."]
        else:
            clean[name] = value
    if errors:
        raise InvalidInput("Some parameters are not valid.", errors={"parameters": errors})
    return clean


def _resolve_tools(slugs: Any) -> list[AITool]:
    if slugs is None:
        return []
    if not isinstance(slugs, list) or not all(isinstance(s, str) for s in slugs):
        raise InvalidInput("tools must be a list of tool slugs.", errors={"tools": ["Must be a list of slugs."]})
    slugs = list(dict.fromkeys(slugs))
    tools = {t.slug: t for t in AITool.objects.filter(slug__in=slugs)}
    missing = [s for s in slugs if s not in tools]
    if missing:
        raise InvalidInput("Unknown tools.", errors={"tools": [f"Unknown tool: {s}" for s in missing]})
    return [tools[s] for s in slugs]


def resolve_repository(version: TemplateVersion, clean: dict[str, Any], *, actor: Any, team: Team) -> Repository | None:
    """The registered repository the `repository` parameter names by slug (never a free path or URL: that would
    let a developer clone other teams' checkouts, file:// or services on the worker's network). None when the
    version declares no such parameter or no value is given; 400 under parameters.repository otherwise."""
    if REPOSITORY_PARAMETER not in {p["name"] for p in version.parameters}:
        return None
    slug = clean.get(REPOSITORY_PARAMETER)
    if slug is None or slug == "":
        return None
    try:
        repository = repository_for_use(actor=actor, slug=slug)
    except InvalidInput as exc:
        raise InvalidInput("The repository is not valid.", errors={"parameters": exc.errors}) from exc
    if not permissions.is_platform(actor) and not repository.teams.filter(pk=team.pk).exists():
        message = f"Repository {repository.slug} is not registered for team {team.slug}."
        raise InvalidInput(message, errors={"parameters": {REPOSITORY_PARAMETER: [message]}})
    clean[REPOSITORY_PARAMETER] = repository.slug  # the user-facing value stays the slug
    return repository


def workspace_classification(template: WorkspaceTemplate, repository: Repository | None) -> str:
    """The higher of the template's and the repository's data classification."""
    classification = template.data_classification
    if repository is not None and DataClassification.rank(repository.data_classification) > DataClassification.rank(
        classification
    ):
        return repository.data_classification
    return classification


def policy_context(template: WorkspaceTemplate, classification: str | None = None) -> PolicyContext:
    """The policy's context for a workspace: its classification (the template's unless given) and template."""
    return PolicyContext(classification=classification or template.data_classification, template=template)


def _check_policy(
    user: Any, tools: list[AITool], template: WorkspaceTemplate, classification: str | None = None
) -> None:
    decisions = decide_many(user, tools, policy_context(template, classification))
    denied = [
        {"tool": tool.slug, "reasons": [r.as_dict() for r in decisions[tool.pk].reasons]}
        for tool in tools
        if not decisions[tool.pk].allowed
    ]
    if denied:
        names = ", ".join(d["tool"] for d in denied)
        raise NotPermitted(f"The policy does not allow: {names}.", reasons=denied)


def tools_snapshot(tools: list[AITool]) -> list[dict]:
    out = []
    for tool in tools:
        version = tool.versions.order_by("-created_at").first() if hasattr(tool, "versions") else None
        out.append(
            {
                "slug": tool.slug,
                "name": tool.name,
                "version": getattr(version, "version", None),
                "launch_command": list(getattr(version, "launch_command", None) or []),
            }
        )
    return out


# --- quotas -------------------------------------------------------------------------------------
def quota_of(team: Team) -> tuple[int, int]:
    row = TeamQuota.objects.filter(team=team).first()
    max_ws = row.max_workspaces if row and row.max_workspaces is not None else goldpath_settings.DEFAULT_MAX_WORKSPACES
    max_builds = (
        row.max_concurrent_builds
        if row and row.max_concurrent_builds is not None
        else goldpath_settings.DEFAULT_MAX_CONCURRENT_BUILDS
    )
    return max_ws, max_builds


def _check_build_quota(team: Team) -> None:
    _, max_builds = quota_of(team)
    active = WorkspaceBuild.objects.filter(workspace__team=team, status__in=ACTIVE_BUILD_STATUSES).count()
    if active >= max_builds:
        raise QuotaExceeded(
            f"Team {team.slug} already has {active} builds queued or running (quota: {max_builds}). "
            "Try again when one finishes."
        )


# --- builds -------------------------------------------------------------------------------------
def _enqueue(build: WorkspaceBuild) -> None:
    from ..tasks.provisioning import run_build

    def send() -> None:
        result = run_build.apply_async(args=[build.pk])
        WorkspaceBuild.objects.filter(pk=build.pk, celery_task_id="").update(celery_task_id=result.id or "")

    transaction.on_commit(send)


def _new_build(workspace: Workspace, transition: str, actor: Any, target_status: str) -> WorkspaceBuild:
    """Inside the caller's transaction, with the workspace row locked."""
    if workspace.builds.filter(status__in=ACTIVE_BUILD_STATUSES).exists():
        raise TransitionNotAllowed("Another build of this workspace is queued or running; try again when it ends.")
    _check_build_quota(workspace.team)
    number = (workspace.builds.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    tools = list(workspace.tools.all().order_by("slug"))
    prior = workspace.status
    try:
        with transaction.atomic():
            build = WorkspaceBuild.objects.create(
                workspace=workspace,
                number=number,
                transition=transition,
                template_version=workspace.template_version,
                parameters=workspace.parameters,
                tools=tools_snapshot(tools),
                requested_by=actor if getattr(actor, "pk", None) else None,
                prior_status=prior,
            )
    except IntegrityError as exc:
        raise TransitionNotAllowed("Another build of this workspace is queued or running.") from exc
    workspace.status = target_status
    workspace.last_activity_at = timezone.now()
    workspace.save(update_fields=["status", "last_activity_at", "updated_at"])
    _enqueue(build)
    return build


def _lock(workspace: Workspace) -> Workspace:
    return (
        Workspace.objects.select_for_update()
        .select_related("team", "template", "template_version")
        .get(pk=workspace.pk)
    )


def _lock_team(team_id: int) -> None:
    """Serialise quota checks per team (a row lock on PostgreSQL; SQLite serialises writes anyway)."""
    list(Team.objects.select_for_update().filter(pk=team_id).values_list("pk", flat=True))


def _require_operator(actor: Any, workspace: Workspace) -> None:
    if not permissions.can_operate_workspace(actor, workspace):
        raise NotPermitted("Only the workspace's owner, platform engineers and admins may change it.")


# --- services -----------------------------------------------------------------------------------
def workspace_create(**kwargs: Any) -> Workspace:
    """Create a workspace (see _workspace_create); a refused repository is audited, as every decision."""
    try:
        return _workspace_create(**kwargs)
    except InvalidInput as exc:
        _audit_refused_repository(exc, kwargs.get("actor"), kwargs.get("parameters"))
        raise


def _workspace_create(
    *,
    actor: Any,
    name: str,
    template: WorkspaceTemplate,
    parameters: Any = None,
    tools: Any = None,
    ttl_hours: int | None = None,
    team: Team | None = None,
) -> Workspace:
    """Validate (400), decide the policy per tool (403), check quotas (429), then create the workspace
    and its first build (start), whose task is sent on commit."""
    if not permissions.can_create_workspace(actor):
        raise NotPermitted("Your role may not create workspaces.")
    errors: dict[str, Any] = {}
    if not isinstance(name, str) or not NAME_RE.match(name or ""):
        errors["name"] = ["Use 1-63 lowercase letters, digits and hyphens, starting and ending with a letter or digit."]
    version = template.active_version
    if version is None or version.status != TemplateVersionStatus.PUBLISHED:
        errors["template"] = ["This template has no active published version."]
    if errors:
        raise InvalidInput("The workspace is not valid.", errors=errors)
    clean = validate_parameters(version, parameters)
    tool_objs = _resolve_tools(tools)
    if team is None:
        team = Team.objects.filter(members=actor).order_by("slug").first()
        if team is None:
            raise InvalidInput("You belong to no team; a workspace belongs to a team.", errors={"team": ["No team."]})
    elif not permissions.is_platform(actor) and not team.members.filter(pk=actor.pk).exists():
        raise NotPermitted("You are not a member of this team.")
    repository = resolve_repository(version, clean, actor=actor, team=team)
    classification = workspace_classification(template, repository)
    _check_policy(actor, tool_objs, template, classification)
    if ttl_hours is None:
        ttl_hours = goldpath_settings.WORKSPACE_DEFAULT_TTL_HOURS or None
    with transaction.atomic():
        _lock_team(team.pk)
        if Workspace.objects.filter(owner=actor, name=name).exclude(status=W.DELETED).exists():
            raise InvalidInput("You already have a workspace with this name.", errors={"name": ["Already used."]})
        max_ws, _ = quota_of(team)
        live = Workspace.objects.filter(team=team).exclude(status=W.DELETED).count()
        if live >= max_ws:
            raise QuotaExceeded(f"Team {team.slug} has {live} workspaces (quota: {max_ws}). Delete one first.")
        _check_build_quota(team)
        try:
            with transaction.atomic():
                workspace = Workspace.objects.create(
                    name=name,
                    owner=actor,
                    team=team,
                    template=template,
                    template_version=version,
                    parameters=clean,
                    classification=classification,
                    status=W.PENDING,
                    ttl_hours=ttl_hours,
                    last_activity_at=timezone.now(),
                )
        except IntegrityError as exc:
            raise InvalidInput(
                "You already have a workspace with this name.", errors={"name": ["Already used."]}
            ) from exc
        workspace.tools.set(tool_objs)
        build = _new_build(workspace, Transition.START, actor, W.PENDING)
        audit.record(
            actor=actor,
            verb="workspace.created",
            target=workspace,
            payload={
                "name": name,
                "template": template.slug,
                "version": version.number,
                "tools": [t.slug for t in tool_objs],
                "parameters": _audit_params(version, clean),
                "classification": classification,
                "build": build.pk,
            },
        )
        record_usage(
            "workspace_created", user=actor, team=team, template=template, key=f"workspace:{workspace.pk}:created"
        )
        for tool in tool_objs:
            record_usage(
                "tool_enabled",
                user=actor,
                team=team,
                tool=tool,
                template=template,
                key=f"workspace:{workspace.pk}:tool:{tool.slug}",
            )
    workspace.latest_build = build
    return workspace


def _audit_params(version: TemplateVersion, values: dict) -> dict:
    sensitive = {p["name"] for p in version.parameters if p.get("sensitive")}
    return {k: ("********" if k in sensitive else v) for k, v in values.items()}


def _transition(workspace: Workspace, actor: Any, action: str) -> WorkspaceBuild:
    sources, during = TRANSITIONS[action]
    with transaction.atomic():
        ws = _lock(workspace)
        _require_operator(actor, ws)
        if ws.status not in sources:
            raise TransitionNotAllowed(f"The workspace is {ws.status}; it cannot {action} now.")
        transition = {"update": Transition.START}.get(action, action)
        build = _new_build(ws, transition, actor, during)
        audit.record(actor=actor, verb=f"workspace.{action}", target=ws, payload={"build": build.pk})
        kind = {"start": "workspace_started", "stop": "workspace_stopped", "delete": "workspace_deleted"}.get(action)
        if kind:
            record_usage(
                kind, user=ws.owner, team=ws.team, template=ws.template, key=f"workspace:{ws.pk}:{action}:{build.pk}"
            )
    return build


def workspace_start(*, workspace: Workspace, actor: Any) -> WorkspaceBuild:
    return _transition(workspace, actor, "start")


def workspace_stop(*, workspace: Workspace, actor: Any) -> WorkspaceBuild:
    return _transition(workspace, actor, "stop")


def workspace_delete(*, workspace: Workspace, actor: Any) -> WorkspaceBuild:
    return _transition(workspace, actor, "delete")


def _audit_refused_repository(exc: InvalidInput, actor: Any, parameters: Any) -> None:
    """A refused repository parameter is an audited decision (written after the refused request rolled back)."""
    errors = exc.errors.get("parameters")
    if isinstance(errors, dict) and REPOSITORY_PARAMETER in errors:
        slug = parameters.get(REPOSITORY_PARAMETER) if isinstance(parameters, dict) else None
        repository_use_denied(actor=actor, slug=slug, purpose="workspace")


def workspace_update(*, workspace: Workspace, actor: Any, parameters: Any = None) -> WorkspaceBuild:
    """Move to the template's active version and/or new parameters, then rebuild (start)."""
    try:
        return _workspace_update(workspace=workspace, actor=actor, parameters=parameters)
    except InvalidInput as exc:
        _audit_refused_repository(exc, actor, parameters)
        raise


def _workspace_update(*, workspace: Workspace, actor: Any, parameters: Any = None) -> WorkspaceBuild:
    sources, during = TRANSITIONS["update"]
    with transaction.atomic():
        ws = _lock(workspace)
        _require_operator(actor, ws)
        if ws.status not in sources:
            raise TransitionNotAllowed(f"The workspace is {ws.status}; it cannot update now.")
        version = ws.template.active_version or ws.template_version
        merged = {**ws.parameters, **(parameters or {})} if isinstance(parameters, dict | None) else parameters
        if isinstance(merged, dict):
            declared = {p["name"] for p in version.form_parameters}
            merged = {k: v for k, v in merged.items() if k in declared or k in (parameters or {})}
        clean = validate_parameters(version, merged)
        repository = resolve_repository(version, clean, actor=actor, team=ws.team)
        classification = workspace_classification(ws.template, repository)
        if classification != ws.classification:
            _check_policy(ws.owner, list(ws.tools.all()), ws.template, classification)
        previous = ws.template_version.number
        ws.template_version = version
        ws.parameters = clean
        ws.classification = classification
        ws.save(update_fields=["template_version", "parameters", "classification", "updated_at"])
        build = _new_build(ws, Transition.START, actor, during)
        audit.record(
            actor=actor,
            verb="workspace.update",
            target=ws,
            payload={
                "build": build.pk,
                "from_version": previous,
                "to_version": version.number,
                "classification": classification,
            },
        )
    return build


def build_cancel(*, build: WorkspaceBuild, actor: Any) -> WorkspaceBuild:
    """A pending build is canceled at once; a running one is asked to stop (the worker interrupts terraform)."""
    with transaction.atomic():
        ws = _lock(build.workspace)
        _require_operator(actor, ws)
        build = WorkspaceBuild.objects.select_for_update().get(pk=build.pk)
        if build.status == BuildStatus.PENDING:
            build.status = BuildStatus.CANCELED
            build.finished_at = timezone.now()
            build.error = f"Canceled by {getattr(actor, 'username', actor)} before it started."
            build.save(update_fields=["status", "finished_at", "error"])
            ws.status = build.prior_status or W.FAILED
            if ws.status == W.PENDING:
                ws.status = W.FAILED
            ws.save(update_fields=["status", "updated_at"])
        elif build.status == BuildStatus.RUNNING:
            build.cancel_requested = True
            build.save(update_fields=["cancel_requested"])
        else:
            raise TransitionNotAllowed(f"The build is {build.status}; only a pending or running build can be canceled.")
        audit.record(actor=actor, verb="build.cancel", target=build, payload={"workspace": str(ws.pk)})
    return build


def builtin_values(workspace: Workspace, build: WorkspaceBuild, home: str) -> dict[str, Any]:
    return {
        "goldpath_workspace_id": str(workspace.pk),
        "goldpath_workspace_name": workspace.name,
        "goldpath_owner": workspace.owner.username,
        "goldpath_transition": "stop" if build.transition == Transition.STOP else "start",
        "goldpath_tools": json.dumps(build.tools),
        "goldpath_home": home,
    }
