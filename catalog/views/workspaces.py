"""Golden paths and workspaces pages: gallery, template page, create form generated from the parameter
schema (tools filtered by the policy, with reasons), workspace page with live log, my workspaces."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from .. import permissions as perms
from .. import safejson
from ..models import AITool, ToolStatus, WorkspaceTemplate
from ..numbers import small_int
from ..policy import decide_many
from ..selectors import repositories_for, visible_workspaces
from ..services import workspaces as ws_services
from ..services.errors import DomainError
from ..services.workspace_parameters import REPOSITORY_PARAMETER

NUMERIC_ERROR = "Must be a number."


@login_required
def template_gallery(request):
    templates = WorkspaceTemplate.objects.select_related("active_version", "owner_team").order_by("name")
    return render(request, "workspaces/template_gallery.html", {"templates": templates})


@login_required
def template_detail(request, slug: str):
    template = get_object_or_404(WorkspaceTemplate.objects.select_related("active_version"), slug=slug)
    return render(
        request,
        "workspaces/template_detail.html",
        {
            "template": template,
            "versions": template.versions.all(),
            "can_manage": perms.can_manage_templates(request.user),
        },
    )


def tool_choices(user, template: WorkspaceTemplate) -> list[dict]:
    """Every approved tool with the policy's answer for this template: allowed ones are pickable."""
    tools = list(AITool.objects.filter(status=ToolStatus.APPROVED).order_by("name"))
    decisions = decide_many(user, tools, ws_services.policy_context(template))
    return [{"tool": t, "allowed": decisions[t.pk].allowed, "reasons": decisions[t.pk].reasons} for t in tools]


def _field_value(param: dict, post) -> tuple[bool, object, str | None]:
    """(present, value, error) for one parameter from the form."""
    name, tf_type = param["name"], (param.get("type") or "string").replace(" ", "")
    if tf_type == "bool":
        return True, post.get(name) == "on", None
    raw = post.get(name, "")
    if raw == "" and not param.get("required"):
        return False, None, None
    if tf_type == "number":
        try:
            return True, (int(raw) if raw.lstrip("-").isdigit() else float(raw)), None
        except ValueError:
            return True, raw, NUMERIC_ERROR
    if tf_type == "string":
        return True, raw, None
    try:
        return True, safejson.loads(raw), None
    except safejson.JSONTooDeep as exc:
        return True, raw, f"Must be JSON {exc.max_depth} levels deep at most."
    except ValueError:
        return True, raw, "Must be JSON."


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
        params = {}
        for p in version.form_parameters:
            present, value, err = _field_value(p, request.POST)
            values[p["name"]] = value
            if err:
                errors[p["name"]] = [err]
            elif present:
                params[p["name"]] = value
        if not errors:
            try:
                ws = ws_services.workspace_create(
                    actor=request.user, name=name, template=template, parameters=params, tools=chosen
                )
            except DomainError as exc:
                status = exc.status_code
                errors = {
                    **exc.errors.get("parameters", {}),
                    **{k: v for k, v in exc.errors.items() if k != "parameters"},
                }
                if exc.reasons:
                    errors["tools"] = [
                        f"{d['tool']}: " + "; ".join(r["message"] for r in d["reasons"]) for d in exc.reasons
                    ]
                messages.error(request, exc.message)
            else:
                messages.success(request, f"Workspace {ws.name} is being created.")
                return redirect("catalog:workspace-detail", pk=ws.pk)
        else:
            status = 400
    fields = [
        {**p, "value": values.get(p["name"]), "errors": errors.get(p["name"], []), "widget": _widget(p)}
        for p in version.form_parameters
    ]
    context = {
        "template": template,
        "version": version,
        "fields": fields,
        "name": name,
        "name_errors": errors.get("name", []),
        "tool_errors": errors.get("tools", []),
        "other_errors": [m for k, v in errors.items() if k in ("team", "template") for m in v],
        "tools": tool_choices(request.user, template),
        "chosen": chosen,
        "repositories": list(repositories_for(request.user)),
    }
    return render(request, "workspaces/workspace_new.html", context, status=status)


def _widget(param: dict) -> str:
    t = (param.get("type") or "string").replace(" ", "")
    if param["name"] == REPOSITORY_PARAMETER and t in ("string", "any"):
        return "repository"  # a picker of registered repositories: never a free path or URL
    if t in ("string", "number", "bool"):
        return t
    return "json"


@login_required
def workspace_list(request):
    workspaces = visible_workspaces(request.user).exclude(status="deleted")
    if request.GET.get("all") != "1":
        workspaces = workspaces.filter(owner=request.user)
    return render(request, "workspaces/workspace_list.html", {"workspaces": workspaces[:200]})


def _visible(request, pk):
    try:
        return visible_workspaces(request.user).get(pk=pk)
    except Exception as exc:  # DoesNotExist or a malformed id
        raise Http404("No such workspace.") from exc


@login_required
def workspace_detail(request, pk):
    ws = _visible(request, pk)
    build = ws.builds.select_related("template_version").order_by("-number").first()
    context = {
        "ws": ws,
        "build": build,
        "builds": ws.builds.select_related("template_version").order_by("-number")[:10],
        "actions": ws_services.allowed_actions(ws) if perms.can_operate_workspace(request.user, ws) else [],
        "lines": list(build.log_lines.order_by("seq")) if build else [],
        "tools": list(ws.tools.all()),
    }
    return render(request, "workspaces/workspace_detail.html", context)


@login_required
def workspace_log(request, pk):
    """htmx partial: log lines after N of the latest build (or ?build=), plus the progress and the next poller."""
    ws = _visible(request, pk)
    builds = ws.builds.order_by("-number")
    build_id = small_int(request.GET.get("build", ""))
    if build_id is not None:
        builds = builds.filter(pk=build_id)
    build = builds.first()
    after = small_int(request.GET.get("after", "0")) or 0
    lines = list(build.log_lines.filter(seq__gt=after).order_by("seq")[:500]) if build else []
    nxt = lines[-1].seq if lines else after
    done = build is None or (not build.is_active and nxt >= build.log_count)
    return render(
        request, "workspaces/_log.html", {"ws": ws, "build": build, "lines": lines, "next": nxt, "done": done}
    )


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
        if exc.status_code == 403:
            return redirect(reverse("catalog:workspace-detail", args=[ws.pk]))
    return redirect(reverse("catalog:workspace-detail", args=[ws.pk]))
