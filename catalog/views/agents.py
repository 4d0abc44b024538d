"""Agent run pages: the new-run form, the group page with its diffs and accept, and the provenance lookup.

The group page has a live grid (htmx polling), side-by-side diffs and accept. Thin: selectors, services, the
same answers as the API.
"""

from __future__ import annotations

import hashlib
import shlex

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from .. import permissions as perms
from .. import provenance_lookup as provenance_lookup_selector
from .. import selectors
from ..agents import provenance as prov
from ..agents.usage_view import DEMO_LABEL, group_total, runs_usage
from ..models import RUN_ACTIVE, AcceptStatus, AgentRun, AgentRunLogLine, DataClassification, NetworkPolicy
from ..numbers import small_int
from ..services import agent_groups as agent_services
from ..services.errors import DomainError
from ..services.tool_version_rules import FieldError, launchable_version
from .rendering import render

LOG_TAIL = 6


def _launchable_tools(user):
    """Tools the user may use that have a version an agent group would launch (the service's own rule)."""
    tools = []
    for tool in selectors.usable_tools(user).order_by("name").prefetch_related("versions"):
        try:
            launchable_version(tool)
        except FieldError:
            continue
        tools.append(tool)
    return tools


@login_required
def agent_groups(request):
    """My team's agent groups and the new-run form."""
    form = {"prompt": "", "repository": "", "workspace": "", "base_ref": "", "test_command": "", "time_limit_s": 600}
    form["workspace"] = (request.GET.get("workspace") or "").strip()[:40]  # "Run agents here" on a workspace
    errors: dict = {}
    reasons: list = []
    tools = _launchable_tools(request.user)
    counts = {t.slug: 0 for t in tools}
    if request.method == "POST":
        form = {k: request.POST.get(k, "").strip() for k in form}
        agents = []
        for tool in tools:
            raw = request.POST.get(f"count-{tool.slug}", "0").strip() or "0"
            counts[tool.slug] = small_int(raw) or 0
            if counts[tool.slug]:
                agents.append({"tool": tool.slug, "count": counts[tool.slug]})
        try:
            test_command = shlex.split(form["test_command"]) if form["test_command"] else []
            group = agent_services.agent_group_create(
                actor=request.user,
                prompt=form["prompt"],
                repository=form["repository"] if not form["workspace"] else None,
                workspace=form["workspace"] or None,
                base_ref=form["base_ref"] or None,
                agents=agents,
                classification=request.POST.get("classification") or None,
                test_command=test_command,
                time_limit_s=small_int(form["time_limit_s"]),
                network_policy=request.POST.get("network_policy") or NetworkPolicy.NONE,
            )
            return redirect("goldpath:agent-group", pk=group.pk)
        except ValueError as exc:
            errors = {"test_command": [str(exc)]}
        except DomainError as exc:
            messages.error(request, exc.message)
            errors, reasons = exc.errors, exc.reasons
    groups = selectors.visible_agent_groups(request.user).order_by("-created_at")[:50]
    return render(
        request,
        "catalog/agent_groups.html",
        {
            "groups": groups,
            "tools": [(t, counts.get(t.slug, 0)) for t in tools],
            "form": form,
            "errors": errors,
            "reasons": reasons,
            "may_launch": perms.can_launch_agents(request.user),
            "classifications": DataClassification.choices,
            "repositories": selectors.repositories_for(request.user),
            "my_workspaces": _my_workspaces(request.user),
            "network_policies": NetworkPolicy.choices,
        },
        status=400 if errors else (403 if reasons else 200),
    )


def _my_workspaces(user):
    """The user's own workspaces agents could start from (the service checks the rest at launch)."""
    from ..models import Workspace, WorkspaceStatus

    return Workspace.objects.filter(owner=user, status__in=(WorkspaceStatus.RUNNING, WorkspaceStatus.STOPPED)).order_by(
        "name"
    )[:50]


def _group_or_404(request, pk: int):
    return get_object_or_404(selectors.visible_agent_groups(request.user), pk=pk)


def _tails(runs) -> dict[int, list[str]]:
    """The last LOG_TAIL log lines of every run in one query (each run row knows its last seq)."""
    cond = Q()
    for run in runs:
        if run.log_seq:
            cond |= Q(run_id=run.pk, seq__gt=run.log_seq - LOG_TAIL)
    tails: dict[int, list[str]] = {run.pk: [] for run in runs}
    if cond:
        for run_id, text in (
            AgentRunLogLine.objects.filter(cond).order_by("run_id", "seq").values_list("run_id", "text")
        ):
            tails[run_id].append(text)
    return tails


def _results_key(group, runs, live: bool) -> str:
    """What the results section shows, condensed: the grid carries it, so a page whose results are stale
    gets them with the next grid refresh (and only then)."""
    parts = [
        "1" if live else "0",
        group.accept_status,
        str(group.accepted_run_id or ""),
        group.accepted_commit,
        group.accept_error[:50],
        *(f"a{a.pk}:{a.status}" for a in context_applies(group)),
        *(f"{r.pk}:{r.status}:{r.test_exit_code}:{int(r.has_diff)}" for r in runs),
        # the results show each diff's usage (stored once its run ended: refreshed when that changes)
        *(f"{r.pk}:{r.usage.model_calls}:{r.usage.cost}" for r in runs if r.has_diff),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _grid_context(request, group) -> dict:
    """The grid's runs without their diffs and test output (the results section loads those when they change)."""
    runs = list(
        group.runs.select_related("tool", "tool_version")
        .defer("diff", "test_output", "argv_template", "result")
        .annotate(has_diff=ExpressionWrapper(~Q(diff=""), output_field=BooleanField()))
        .order_by("index")
    )
    tails = _tails(runs)
    usage = runs_usage(runs)
    for run in runs:
        run.tail = tails[run.pk]
        run.usage = usage[run.pk]
    active = any(r.status in RUN_ACTIVE for r in runs)
    # a remote accept is committed (an apply made) by a worker: keep refreshing until it is done
    applying = any(a.status == "pending" for a in context_applies(group))
    live = active or group.accept_status == AcceptStatus.PENDING or applying
    return {
        "group": group,
        "runs": runs,
        "active": active,
        "live": live,
        "results_key": _results_key(group, runs, live),
        "total_usage": group_total(usage.values()),
        "demo_label": DEMO_LABEL,
        "may_act": perms.is_platform(request.user) or group.requester_id == request.user.pk,
        # only the workspace's owner applies into it
        "may_apply": bool(group.workspace_id) and group.workspace.owner_id == request.user.pk,
    }


def context_applies(group) -> list:
    """The group's applies into its workspace, newest first (read once per request)."""
    cache = getattr(group, "_applies", None)
    if cache is None:
        cache = group._applies = list(group.applies.all()[:50]) if group.workspace_id else []
    return cache


def _results_context(group, context: dict) -> dict:
    """Adds the runs with a diff (diff and test output loaded here only)."""
    shown = {r.pk: r for r in context["runs"] if r.has_diff}
    diff_runs = list(group.runs.filter(pk__in=shown).select_related("tool").order_by("index")) if shown else []
    for run in diff_runs:
        run.usage = shown[run.pk].usage
        run.applied = [a for a in context_applies(group) if a.run_id == run.pk][:3]
    return {**context, "diff_runs": diff_runs}


@login_required
def agent_group(request, pk: int):
    group = _group_or_404(request, pk)
    context = _results_context(group, _grid_context(request, group))
    return render(request, "catalog/agent_group.html", context)


@login_required
def agent_group_grid(request, pk: int):
    """The live grid alone (htmx polls it every 2 s while runs are active). When the page says its results
    section is older than what the grid shows (`?results_key=`), the section comes along as an htmx
    out-of-band swap."""
    group = _group_or_404(request, pk)
    context = _grid_context(request, group)
    seen = request.GET.get("results_key")
    if seen is not None and seen != context["results_key"]:
        context = {**_results_context(group, context), "results_oob": True}
    return render(request, "catalog/_agent_grid.html", context)


@login_required
def agent_group_results(request, pk: int):
    """The "results side by side" section alone (diffs, tests, accept buttons with a fresh CSRF token)."""
    group = _group_or_404(request, pk)
    return render(request, "catalog/_agent_results.html", _results_context(group, _grid_context(request, group)))


@login_required
@require_POST
def agent_group_cancel(request, pk: int):
    group = _group_or_404(request, pk)
    try:
        agent_services.agent_group_cancel(group=group, actor=request.user)
        messages.success(request, "Canceled: running agents are being stopped.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("goldpath:agent-group", pk=group.pk)


@login_required
@require_POST
def agent_group_accept(request, pk: int):
    group = _group_or_404(request, pk)
    run = AgentRun.objects.filter(group=group, pk=request.POST.get("run") or 0).first()
    if run is None:
        raise Http404
    try:
        if request.POST.get("action") == "apply":  # "Apply into workspace", beside Accept
            from ..services.agent_workspace import agent_group_apply

            agent_group_apply(group=group, actor=request.user, run=run)
            messages.success(request, "Applying: a worker is bringing the result into your workspace's checkout.")
        else:
            group = agent_services.agent_group_accept(group=group, actor=request.user, run=run)
            messages.success(request, "Accepted: a worker is committing and pushing the branch.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("goldpath:agent-group", pk=group.pk)


@login_required
def provenance_lookup(request):
    """Who prompted what through which agent: by commit, or by repository + path + line (the same lookup as
    `GET /api/v1/provenance/`: catalog.provenance_lookup)."""
    q = request.GET
    record, error, blame = None, "", None
    if provenance_lookup_selector.asked(q):
        try:
            match = provenance_lookup_selector.lookup(request.user, q)
        except DomainError as exc:
            match, error = None, " ".join(m for msgs in exc.errors.values() for m in msgs) or exc.message
        if match is not None:
            record, blame = match.record, match.blame
        elif not error:
            commit = (q.get("commit") or "").strip()[:40]
            error = (
                f"No provenance record you may read for commit {commit}: it was not made by an agent run here."
                if commit
                else "No provenance you may read for that repository."
            )
    verification = prov.verify_record(record) if record else None
    return render(
        request,
        "catalog/provenance.html",
        {"record": record, "error": error, "blame": blame, "q": q, "verification": verification},
    )
