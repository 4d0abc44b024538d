"""Workspaces and their builds: create, start, stop, update, delete, cancel.

Every transition locks the workspace row, refuses (409) while another build is pending or running,
creates the build row and sends its task on commit. The partial unique constraint
`one_active_build_per_workspace` backs the lock up: a race that slips past it becomes a 409, never two builds.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import audit, permissions
from ..conf import goldpath_settings
from ..masking import mask_parameters
from ..models import (
    ACTIVE_BUILD_STATUSES,
    BuildStatus,
    Team,
    TemplateVersionStatus,
    Transition,
    Workspace,
    WorkspaceBuild,
    WorkspaceStatus,
    WorkspaceTemplate,
)
from ..usage import record_usage
from .errors import InvalidInput, NotPermitted, QuotaExceeded, TransitionNotAllowed
from .workspace_parameters import (
    audit_refused_repository,
    resolve_repository,
    validate_parameters,
    workspace_classification,
)
from .workspace_rules import check_build_quota, check_policy, quota_of, resolve_tools, tools_snapshot

W = WorkspaceStatus
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

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


# --- builds -------------------------------------------------------------------------------------
def _enqueue(build: WorkspaceBuild) -> None:
    from ..tasks.provisioning import run_build

    def send() -> None:
        result = run_build.apply_async(args=[build.pk])
        WorkspaceBuild.objects.filter(pk=build.pk, task_id="").update(task_id=result.id or "")

    transaction.on_commit(send)


def _new_build(workspace: Workspace, transition: str, actor: Any, target_status: str) -> WorkspaceBuild:
    """Inside the caller's transaction, with the workspace row locked."""
    if workspace.builds.filter(status__in=ACTIVE_BUILD_STATUSES).exists():
        raise TransitionNotAllowed("Another build of this workspace is queued or running; try again when it ends.")
    check_build_quota(workspace.team)
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
        audit_refused_repository(exc, kwargs.get("actor"), kwargs.get("parameters"))
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
    tool_objs = resolve_tools(tools)
    if team is None:
        team = Team.objects.filter(group__user=actor).order_by("slug").first()
        if team is None:
            raise InvalidInput("You belong to no team; a workspace belongs to a team.", errors={"team": ["No team."]})
    elif not permissions.is_platform(actor) and not team.members.filter(pk=actor.pk).exists():
        raise NotPermitted("You are not a member of this team.")
    repository = resolve_repository(version, clean, actor=actor, team=team)
    classification = workspace_classification(template, repository)
    check_policy(actor, tool_objs, template, classification)
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
        check_build_quota(team)
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
                "parameters": mask_parameters(version.parameters, clean),
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


def _transition(workspace: Workspace, actor: Any, action: str) -> WorkspaceBuild:
    sources, during = TRANSITIONS[action]
    with transaction.atomic():
        ws = _lock(workspace)
        _require_operator(actor, ws)
        if ws.status not in sources:
            raise TransitionNotAllowed(f"The workspace is {ws.status}; it cannot {action} now.")
        transition = {"update": Transition.START}.get(action, action)
        build = _new_build(ws, transition, actor, during)
        audit.record(actor=actor, verb=f"workspace.{action}_requested", target=ws, payload={"build": build.pk})
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


def workspace_update(
    *, workspace: Workspace, actor: Any, parameters: Any = None, replace: bool = False
) -> WorkspaceBuild:
    """Move to the template's active version and/or new parameters, then rebuild (start). This is also how a
    failed workspace is fixed: new parameters, validated like at creation (400 with field errors), and a new
    build. `parameters` are merged into the current ones; with `replace` they are the whole new set (the page's
    form sends every field, and an emptied optional field goes back to its default)."""
    try:
        return _workspace_update(workspace=workspace, actor=actor, parameters=parameters, replace=replace)
    except InvalidInput as exc:
        audit_refused_repository(exc, actor, parameters)
        raise


def _workspace_update(*, workspace: Workspace, actor: Any, parameters: Any, replace: bool) -> WorkspaceBuild:
    sources, during = TRANSITIONS["update"]
    with transaction.atomic():
        ws = _lock(workspace)
        _require_operator(actor, ws)
        if ws.status not in sources:
            raise TransitionNotAllowed(f"The workspace is {ws.status}; it cannot update now.")
        version = ws.template.active_version or ws.template_version
        if replace and isinstance(parameters, dict):
            merged: Any = dict(parameters)
        elif isinstance(parameters, dict | None):
            merged = {**ws.parameters, **(parameters or {})}
        else:
            merged = parameters  # not an object: validate_parameters answers 400
        if isinstance(merged, dict):
            declared = {p["name"] for p in version.form_parameters}
            merged = {k: v for k, v in merged.items() if k in declared or k in (parameters or {})}
        clean = validate_parameters(version, merged)
        repository = resolve_repository(version, clean, actor=actor, team=ws.team)
        classification = workspace_classification(ws.template, repository)
        if classification != ws.classification:
            check_policy(ws.owner, list(ws.tools.all()), ws.template, classification)
        previous = ws.template_version.number
        ws.template_version = version
        ws.parameters = clean
        ws.classification = classification
        ws.save(update_fields=["template_version", "parameters", "classification", "updated_at"])
        build = _new_build(ws, Transition.START, actor, during)
        audit.record(
            actor=actor,
            verb="workspace.update_requested",
            target=ws,
            payload={
                "build": build.pk,
                "from_version": previous,
                "to_version": version.number,
                "classification": classification,
                "parameters": mask_parameters(version.parameters, clean),
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
        audit.record(actor=actor, verb="build.cancel_requested", target=build, payload={"workspace": str(ws.pk)})
    return build
