"""Golden paths and workspaces pages: gallery, template, create, workspace, edit parameters, my workspaces.

The template page is where platform engineers validate, publish and activate versions; the create form is
generated from the parameter schema (tools filtered by the policy, with reasons); the workspace page follows its
build live (status, builds, buttons, log).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from .. import permissions as perms
from ..masking import mask_parameters, sensitive_parameters
from ..models import AITool, TemplateVersion, ToolStatus, Workspace, WorkspaceBuild, WorkspaceStatus, WorkspaceTemplate
from ..numbers import small_int
from ..policy import decide_many
from ..selectors import repositories_for, visible_workspaces
from ..services import agent_workspace, workspace_rules
from ..services import templates as template_services
from ..services import workspaces as ws_services
from ..services.errors import DomainError, NotPermitted
from ..terminals.selectors import can_open_terminal, terminal_sessions_for
from .rendering import render
from .terminals import recording_url
from .workspace_forms import domain_errors, fields, read_parameters

LOG_BATCH = 500


# --- golden paths -------------------------------------------------------------------------------
@login_required
def template_gallery(request):
    templates = WorkspaceTemplate.objects.select_related("active_version", "owner_team").order_by("name")
    return render(request, "workspaces/template_gallery.html", {"templates": templates})


def _versions_context(request: HttpRequest, template: WorkspaceTemplate) -> dict[str, Any]:
    versions = list(template.versions.select_related("template").all())
    checks = template_services.last_checks(versions)
    rows = [{"v": v, "pending": template_services.check_pending(v), "check": checks.get(v.pk)} for v in versions]
    return {
        "template": template,
        "rows": rows,
        "polling": any(r["pending"] for r in rows),
        "can_manage": perms.can_manage_templates(request.user),
    }


@login_required
def template_detail(request, slug: str):
    template = get_object_or_404(WorkspaceTemplate.objects.select_related("active_version"), slug=slug)
    return render(request, "workspaces/template_detail.html", _versions_context(request, template))


@login_required
def template_versions(request, slug: str):
    """htmx partial: the versions table, polling while a validation or publication is queued."""
    template = get_object_or_404(WorkspaceTemplate, slug=slug)
    return render(request, "workspaces/_template_versions.html", _versions_context(request, template))


VERSION_ACTIONS = {
    "validate": (template_services.template_version_validate, "Validation of v{n} requested: a worker checks it."),
    "publish": (template_services.template_version_publish, "Publication of v{n} requested: a worker validates it."),
    "activate": (template_services.template_version_activate, "v{n} is now the active version."),
}


@login_required
@require_POST
def template_version_action(request, slug: str, number: int, action: str):
    """Validate, publish or activate a version: the services the API calls; refusals become page messages."""
    version = get_object_or_404(TemplateVersion.objects.select_related("template"), template__slug=slug, number=number)
    service, done = VERSION_ACTIONS[action]
    try:
        service(version=version, actor=request.user)
    except NotPermitted as exc:
        raise PermissionDenied(exc.message) from exc
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done.format(n=version.number))
    return redirect(reverse("goldpath:template-detail", args=[slug]) + "#versions")


# --- create and edit ----------------------------------------------------------------------------
def tool_choices(user, template: WorkspaceTemplate) -> list[dict]:
    """Every approved tool with the policy's answer for this template: allowed ones are pickable."""
    tools = list(AITool.objects.filter(status=ToolStatus.APPROVED).order_by("name"))
    decisions = decide_many(user, tools, workspace_rules.policy_context(template))
    return [{"tool": t, "allowed": decisions[t.pk].allowed, "reasons": decisions[t.pk].reasons} for t in tools]


@login_required
@require_http_methods(["GET", "POST"])
def workspace_new(request, slug: str):
    template = get_object_or_404(WorkspaceTemplate.objects.select_related("active_version"), slug=slug)
    version = template.active_version
    if version is None:
        raise Http404("This template has no active version.")
    errors: dict = {}
    values = {p["name"]: p.get("default") for p in version.form_parameters}
    name = ""
    chosen: list[str] = []
    status = 200
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        chosen = request.POST.getlist("tools")
        params, shown, errors = read_parameters(version, request.POST)
        values.update(shown)
        if errors:
            status = 400
        else:
            try:
                ws = ws_services.workspace_create(
                    actor=request.user, name=name, template=template, parameters=params, tools=chosen
                )
            except DomainError as exc:
                status, errors = exc.status_code, domain_errors(exc)
                messages.error(request, exc.message)
            else:
                messages.success(request, f"Workspace {ws.name} is being created.")
                return redirect("goldpath:workspace-detail", pk=ws.pk)
    context = {
        "template": template,
        "version": version,
        "fields": fields(version, values, errors),
        "name": name,
        "name_errors": errors.get("name", []),
        "tool_errors": errors.get("tools", []),
        "other_errors": [m for k, v in errors.items() if k in ("team", "template", "parameters") for m in v],
        "tools": tool_choices(request.user, template),
        "chosen": chosen,
        "repositories": list(repositories_for(request.user)),
    }
    return render(request, "workspaces/workspace_new.html", context, status=status)


def _visible(request, pk) -> Workspace:
    try:
        return visible_workspaces(request.user).get(pk=pk)
    except Exception as exc:  # DoesNotExist or a malformed id
        raise Http404("No such workspace.") from exc


@login_required
@require_http_methods(["GET", "POST"])
def workspace_edit(request, pk):
    """Edit a workspace's parameters and rebuild with them (the API's `update` with parameters): how a failed
    workspace is fixed. The form is the active version's, since an update moves to it."""
    ws = _visible(request, pk)
    if not perms.can_operate_workspace(request.user, ws):
        raise PermissionDenied("Only the workspace's owner, platform engineers and admins may change it.")
    detail = reverse("goldpath:workspace-detail", args=[ws.pk])
    version = ws.template.active_version or ws.template_version
    if "update" not in ws_services.allowed_actions(ws):
        messages.error(
            request, f"The workspace is {ws.get_status_display().lower()}; its parameters cannot change now."
        )
        return redirect(detail)
    defaults = {p["name"]: p.get("default") for p in version.form_parameters}
    hidden = sensitive_parameters(version.parameters)  # a sensitive value is never sent back to the browser
    current = {k: v for k, v in ws.parameters.items() if k not in hidden}
    values, errors, status = {**defaults, **current}, {}, 200
    if request.method == "POST":
        params, shown, errors = read_parameters(version, request.POST, keep=ws.parameters)
        values.update(shown)
        if errors:
            status = 400
        else:
            try:
                build = ws_services.workspace_update(workspace=ws, actor=request.user, parameters=params, replace=True)
            except DomainError as exc:
                status, errors = exc.status_code, domain_errors(exc)
                messages.error(request, exc.message)
            else:
                messages.success(request, f"Parameters saved; build {build.number} rebuilds the workspace with them.")
                return redirect(detail)
    context = {
        "ws": ws,
        "version": version,
        "fields": fields(version, values, errors),
        "other_errors": [m for k, v in errors.items() if k in ("team", "template", "parameters", "tools") for m in v],
        "repositories": list(repositories_for(ws.owner)),
    }
    return render(request, "workspaces/workspace_edit.html", context, status=status)


# --- workspaces ---------------------------------------------------------------------------------
@login_required
def workspace_list(request):
    workspaces = visible_workspaces(request.user).exclude(status="deleted")
    if request.GET.get("all") != "1":
        workspaces = workspaces.filter(owner=request.user)
    return render(request, "workspaces/workspace_list.html", {"workspaces": workspaces[:200]})


def _live_context(request: HttpRequest, ws: Workspace, build: WorkspaceBuild | None) -> dict[str, Any]:
    """What the parts of the workspace page that follow a build show: status, buttons, builds, outputs, error.
    Called after `build` was read: the workspace is read again, so it is never older than the build (a build that
    ended between the two reads would otherwise stop the poller on a stale status)."""
    ws.refresh_from_db()
    builds = list(ws.builds.select_related("template_version").order_by("-number")[:10])
    busy = any(b.is_active for b in builds)
    may_operate = perms.can_operate_workspace(request.user, ws)
    latest = builds[0] if builds else None
    return {
        "ws": ws,
        "build": build,
        "builds": builds,
        "actions": ws_services.allowed_actions(ws, busy=busy) if may_operate else [],
        # the last build failed before Terraform changed anything: the workspace is as it was
        "unchanged_failure": bool(
            latest and latest.status in ("failed", "canceled") and ws.status != WorkspaceStatus.FAILED
        ),
        "latest": latest,
        "can_terminal": ws.status == WorkspaceStatus.RUNNING and can_open_terminal(request.user, ws),
        "can_run_agents": agent_workspace.can_run_agents_here(request.user, ws),
    }


@login_required
def workspace_detail(request, pk):
    ws = _visible(request, pk)
    build = ws.builds.select_related("template_version").order_by("-number").first()
    # the log's cursor is the last line rendered here, never the build's log_seq read before the lines
    # (a worker writing in between made the first line appear twice)
    lines = list(build.log_lines.order_by("seq")) if build else []
    context = {
        **_live_context(request, ws, build),
        "lines": lines,
        "next": lines[-1].seq if lines else 0,
        "done": build is None or not build.is_active,
        "tools": list(ws.tools.all()),
        "parameters": mask_parameters(ws.template_version.parameters, ws.parameters),
        **_terminal_sessions_context(request, ws),
    }
    return render(request, "workspaces/workspace_detail.html", context)


def _terminal_sessions_context(request: HttpRequest, ws: Workspace) -> dict[str, Any]:
    """Recent terminal sessions (None hides the section: the viewer may not see them), each with its replay URL."""
    sessions = list(terminal_sessions_for(request.user, ws)[:20])
    if not sessions and ws.owner_id != request.user.pk:
        return {"terminal_sessions": None}
    for s in sessions:
        s.replay_url = recording_url(s.pk)
    return {"terminal_sessions": sessions, "any_recorded": any(s.recorded and s.closed_at for s in sessions)}


@login_required
def workspace_log(request, pk):
    """htmx partial: log lines after N of one build (?build=, else the latest), its progress, the page's live parts
    (status, buttons, builds, outputs) swapped out of band, and the next poller until the build has ended."""
    ws = _visible(request, pk)
    builds = ws.builds.order_by("-number")
    build_id = small_int(request.GET.get("build", ""))
    if build_id is not None:
        builds = builds.filter(pk=build_id)
    build = builds.first()
    after = small_int(request.GET.get("after", "0")) or 0
    lines = list(build.log_lines.filter(seq__gt=after).order_by("seq")[:LOG_BATCH]) if build else []
    nxt = lines[-1].seq if lines else after
    done = build is None or (not build.is_active and nxt >= build.log_seq)
    context = {**_live_context(request, ws, build), "lines": lines, "next": nxt, "done": done, "oob": True}
    return render(request, "workspaces/_log.html", context)


@login_required
@require_POST
def workspace_action(request, pk, action: str):
    ws = _visible(request, pk)
    fn = {
        "start": ws_services.workspace_start,
        "stop": ws_services.workspace_stop,
        "update": ws_services.workspace_update,
        "delete": ws_services.workspace_delete,
    }.get(action)
    if fn is None:
        raise Http404
    try:
        fn(workspace=ws, actor=request.user)
        messages.success(request, f"{action.title()} requested.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect(reverse("goldpath:workspace-detail", args=[ws.pk]))
