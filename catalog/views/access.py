"""Tool access pages: the "why can't I use this?" panel, request access, the team page, the
access-request queue, the policy simulator and the out-of-policy list. Thin: selectors, `decide`, services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_http_methods, require_POST

from .. import permissions as perms
from .. import selectors
from ..models import AccessRequestStatus, AITool, DataClassification, GrantState, Team
from ..numbers import small_int
from ..policy import PolicyContext, decide, decide_many
from ..policy_hooks import out_of_policy_providers, resolve_template
from ..services import access as access_services
from ..services.errors import DomainError, InvalidInput
from . import safe_next

User = get_user_model()


def _classification(request) -> str:
    value = request.GET.get("classification") or request.POST.get("classification") or DataClassification.INTERNAL
    return value if value in DataClassification.values else DataClassification.INTERNAL


def access_panel_context(request, tool: AITool) -> dict:
    """Context for templates/catalog/_tool_access_panel.html (include it on any tool page)."""
    classification = _classification(request)
    user = request.user
    my_teams = Team.objects.filter(group__user=user).order_by("slug")
    pending = selectors.visible_access_requests(user).filter(tool=tool, status=AccessRequestStatus.PENDING)
    return {
        "tool": tool,
        "decision": decide(user, tool, PolicyContext(classification=classification)),
        "classification": classification,
        "classifications": DataClassification.choices,
        "request_teams": [t for t in my_teams if perms.can_request_access(user, t)],
        "pending_requests": list(pending.filter(requester=user)),
        "team_grants": list(selectors.visible_grants(user).filter(tool=tool, state=GrantState.ACTIVE)),
    }


@login_required
def tool_access_panel(request, slug: str):
    """The panel alone, for htmx refreshes (e.g. after changing the classification)."""
    tool = get_object_or_404(AITool, slug=slug)
    return render(request, "catalog/_tool_access_panel.html", access_panel_context(request, tool))


@login_required
@require_POST
def tool_request_access(request, slug: str):
    tool = get_object_or_404(AITool, slug=slug)
    team = Team.objects.filter(slug=request.POST.get("team", "")).first()
    error = None
    if team is None:
        error = "Choose one of your teams."
    else:
        try:
            access_services.access_request_create(
                actor=request.user, tool=tool, team=team, justification=request.POST.get("justification", "")
            )
        except DomainError as exc:
            error = " ".join([exc.message, *[m for msgs in exc.errors.values() for m in msgs]])
    if request.headers.get("HX-Request"):
        context = access_panel_context(request, tool)
        context["request_error"] = error
        context["request_sent"] = error is None
        return render(request, "catalog/_tool_access_panel.html", context, status=200 if error is None else 400)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"Access to {tool.name} requested for {team.slug}.")
    return redirect("catalog:tool-detail", slug=tool.slug)


def team_access_context(request, team: Team) -> dict:
    """Context for templates/catalog/_team_access_section.html (the team page includes it)."""
    readable = selectors.readable_team_ids(request.user)
    may_read_grants = readable is None or team.pk in readable
    grants = list(selectors.visible_grants(request.user).filter(team=team).order_by("state", "tool__name"))
    active = [g for g in grants if g.state == GrantState.ACTIVE]
    decisions = decide_many(request.user, [g.tool for g in active]) if active else {}
    return {
        "may_read_grants": may_read_grants,
        "active_grants": [(g, decisions.get(g.tool_id)) for g in active],
        "past_grants": [g for g in grants if g.state != GrantState.ACTIVE][:50],
        "requests": selectors.visible_access_requests(request.user).filter(team=team)[:50],
        "can_manage": perms.can_manage_grants(request.user),
        "tools": AITool.objects.filter(status="approved").order_by("name"),
        "classifications": DataClassification.choices,
    }


@login_required
@require_POST
def team_grant(request, slug: str):
    team = get_object_or_404(Team, slug=slug)
    tool = AITool.objects.filter(slug=request.POST.get("tool", "")).first()
    if not perms.can_manage_grants(request.user):
        raise PermissionDenied("Only platform engineers grant tool access.")
    try:
        if tool is None:
            raise InvalidInput("Choose a tool.")
        expires = parse_datetime(request.POST.get("expires_at") or "") if request.POST.get("expires_at") else None
        seats = small_int(request.POST.get("seats", ""))
        access_services.grant_create(
            actor=request.user,
            team=team,
            tool=tool,
            expires_at=expires,
            max_data_classification=request.POST.get("max_data_classification", ""),
            seats=seats,
            budget_usd=request.POST.get("budget_usd", ""),
        )
        messages.success(request, f"{team.slug} may now use {tool.name}.")
    except DomainError as exc:
        messages.error(request, " ".join([exc.message, *[m for msgs in exc.errors.values() for m in msgs]]))
    return redirect("catalog:team-detail", slug=team.slug)


@login_required
@require_POST
def grant_budget(request, pk: int):
    """Change a grant's monthly model budget (blank: none); the same service as PATCH /api/v1/grants/<id>/."""
    grant = get_object_or_404(selectors.visible_grants(request.user), pk=pk)
    if not perms.can_manage_grants(request.user):
        raise PermissionDenied("Only platform engineers change tool grants.")
    try:
        updated = access_services.grant_update(
            grant=grant, actor=request.user, budget_usd=request.POST.get("budget_usd")
        )
        budget = f"${updated.budget_usd} a month" if updated.budget_usd is not None else "no budget"
        messages.success(request, f"{grant.team.slug}'s model budget for {grant.tool.name}: {budget}.")
    except DomainError as exc:
        messages.error(request, " ".join([exc.message, *[m for msgs in exc.errors.values() for m in msgs]]))
    return redirect(safe_next(request, reverse("catalog:team-detail", kwargs={"slug": grant.team.slug})))


@login_required
@require_POST
def grant_revoke(request, pk: int):
    grant = get_object_or_404(selectors.visible_grants(request.user), pk=pk)
    if not perms.can_manage_grants(request.user):
        raise PermissionDenied("Only platform engineers revoke tool access.")
    try:
        access_services.grant_revoke(grant=grant, actor=request.user, reason=request.POST.get("reason", ""))
        messages.success(request, f"Revoked {grant.team.slug}'s access to {grant.tool.name}.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect(safe_next(request, reverse("catalog:team-detail", kwargs={"slug": grant.team.slug})))


@login_required
def access_request_queue(request):
    status = request.GET.get("status", AccessRequestStatus.PENDING)
    qs = selectors.visible_access_requests(request.user).order_by("-created_at", "-id")
    if status in AccessRequestStatus.values:
        qs = qs.filter(status=status)
    return render(
        request,
        "catalog/access_request_queue.html",
        {
            "requests": qs[:200],
            "status": status,
            "statuses": AccessRequestStatus.choices,
            "can_decide": perms.can_manage_grants(request.user),
            "classifications": DataClassification.choices,
        },
    )


@login_required
@require_POST
def access_request_decide(request, pk: int, verdict: str):
    req = get_object_or_404(selectors.visible_access_requests(request.user), pk=pk)
    if verdict not in ("approve", "reject"):
        raise Http404
    try:
        if verdict == "approve":
            expires = parse_datetime(request.POST.get("expires_at") or "") if request.POST.get("expires_at") else None
            seats = small_int(request.POST.get("seats", ""))
            access_services.access_request_approve(
                access_request=req,
                actor=request.user,
                reason=request.POST.get("reason", ""),
                expires_at=expires,
                max_data_classification=request.POST.get("max_data_classification", ""),
                seats=seats,
                budget_usd=request.POST.get("budget_usd", ""),
            )
        else:
            access_services.access_request_reject(
                access_request=req, actor=request.user, reason=request.POST.get("reason", "")
            )
        error = None
    except DomainError as exc:
        if exc.status_code == 403:
            raise PermissionDenied(exc.message) from exc
        error = " ".join([exc.message, *[m for msgs in exc.errors.values() for m in msgs]])
    req.refresh_from_db()
    if request.headers.get("HX-Request"):
        return render(
            request,
            "catalog/_access_request_row.html",
            {"r": req, "can_decide": True, "error": error, "classifications": DataClassification.choices},
        )
    if error:
        messages.error(request, error)
    return redirect("catalog:access-requests")


@login_required
@require_http_methods(["GET", "POST"])
def simulator(request):
    """The policy simulator form: what would the decision be for this user, tool and context?"""
    context: dict = {
        "tools": AITool.objects.order_by("name"),
        "classifications": DataClassification.choices,
        "may_ask_anyone": perms.can_read_everything(request.user),
        "form": {"user": request.user.username, "classification": DataClassification.INTERNAL},
    }
    if request.method == "POST":
        form = {k: request.POST.get(k, "").strip() for k in ("user", "tool", "classification", "template")}
        context["form"] = form
        subject = User.objects.filter(username=form["user"] or request.user.username).first()
        tool = AITool.objects.filter(slug=form["tool"]).first()
        template = resolve_template(form["template"]) if form["template"] else None
        status = 200
        if subject is None or not perms.can_simulate_for(request.user, subject):
            context["error"] = "You may ask about yourself only." if not context["may_ask_anyone"] else "No such user."
            status = 403 if not context["may_ask_anyone"] else 400
        elif tool is None:
            context["error"], status = "Choose a tool.", 400
        elif form["template"] and template is None:
            context["error"], status = f"No template {form['template']}.", 400
        else:
            classification = (
                form["classification"]
                if form["classification"] in DataClassification.values
                else DataClassification.INTERNAL
            )
            context["result"] = decide(subject, tool, PolicyContext(classification=classification, template=template))
            context["subject"], context["tool"] = subject, tool
        if request.headers.get("HX-Request"):
            return render(request, "catalog/_simulator_result.html", context, status=status)
        return render(request, "catalog/simulator.html", context, status=status)
    return render(request, "catalog/simulator.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def out_of_policy(request):
    providers = out_of_policy_providers()
    if request.method == "POST":
        if not perms.can_act_out_of_policy(request.user):
            raise PermissionDenied("Only platform engineers act on out-of-policy objects.")
        action = request.POST.get("action", "")
        by_kind: dict[str, list[str]] = {}
        for value in request.POST.getlist("item"):
            kind, _, item_id = value.partition(":")
            if kind in providers and action in providers[kind].actions:
                by_kind.setdefault(kind, []).append(item_id)
        done = 0
        for kind, ids in by_kind.items():
            result = providers[kind].act(
                actor=request.user, action=action, ids=ids, reason=request.POST.get("reason", "")
            )
            done += len(result["done"])
            for item_id, message in result["failed"].items():
                messages.error(request, f"{kind} {item_id}: {message}")
        messages.success(request, f"{action}: {done} done.")
        return redirect("catalog:out-of-policy")
    items = [item for _, p in sorted(providers.items()) for item in p.items(request.user)]
    actions = sorted({a for p in providers.values() for a in p.actions})
    return render(
        request,
        "catalog/out_of_policy.html",
        {"items": items, "actions": actions, "can_act": perms.can_act_out_of_policy(request.user)},
    )
