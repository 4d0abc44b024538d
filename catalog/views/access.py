"""Tool access pages: the "why can't I use this?" panel, requests, a team's grants and the request queue.

Tool access pages: the "why can't I use this?" panel, request access, the team page's access section, the
access-request queue (the simulator and the out-of-policy list: views.policy). Thin: selectors, `decide`, services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from .. import permissions as perms
from .. import selectors
from ..forms import GrantForm, page_expiry
from ..models import (
    AccessGrant,
    AccessRequest,
    AccessRequestStatus,
    AITool,
    DataClassification,
    GrantState,
    Team,
    ToolStatus,
)
from ..numbers import small_int
from ..policy import PolicyContext, decide, decide_many
from ..services import access as access_services
from ..services import grants as grant_services
from ..services.errors import DomainError
from ..templatetags.goldpath_format import grant_can_help
from . import safe_next
from .rendering import render

User = get_user_model()
GRANT_FORM_ATTR = "_goldpath_grant_form"  # a refused grant form, shown again by the team page


def _classification(request) -> str:
    value = request.GET.get("classification") or request.POST.get("classification") or DataClassification.INTERNAL
    return value if value in DataClassification.values else DataClassification.INTERNAL


def access_panel_context(request, tool: AITool) -> dict:
    """Context for templates/catalog/_tool_access_panel.html (include it on any tool page). "Request access" is
    offered only where a grant would lift the denial and for teams that hold none and have none pending."""
    classification = _classification(request)
    user = request.user
    decision = decide(user, tool, PolicyContext(classification=classification))
    pending = selectors.visible_access_requests(user).filter(tool=tool, status=AccessRequestStatus.PENDING)
    busy = set(AccessGrant.objects.in_force().filter(tool=tool).values_list("team_id", flat=True))
    busy |= set(
        AccessRequest.objects.filter(tool=tool, status=AccessRequestStatus.PENDING).values_list("team_id", flat=True)
    )
    mine = [t for t in Team.objects.filter(group__user=user).order_by("name") if perms.can_request_access(user, t)]
    request_teams = [t for t in mine if t.pk not in busy]
    may_request = bool(
        not decision.allowed and tool.status == ToolStatus.APPROVED and grant_can_help(decision) and request_teams
    )
    return {
        "tool": tool,
        "decision": decision,
        "classification": classification,
        "classification_label": DataClassification(classification).label,
        "classifications": DataClassification.choices,
        "request_teams": request_teams,
        "may_request": may_request,
        "request_blocked": _request_blocked(tool, decision, mine, request_teams) if not may_request else "",
        "pending_requests": list(pending.filter(team__in=mine).select_related("team", "requester")),
        "team_grants": list(selectors.visible_grants(user).filter(tool=tool, state=GrantState.ACTIVE)),
    }


def _request_blocked(tool: AITool, decision, mine: list[Team], free: list[Team]) -> str:
    """Why the panel offers no "Request access" for a denied tool (blank when allowed)."""
    if decision.allowed:
        return ""
    if tool.status != ToolStatus.APPROVED or not grant_can_help(decision):
        return "A grant would not change this, so access cannot be requested."
    if not mine:
        return "You are in no team that may request access."
    if not free:
        return "Each of your teams already holds a grant or has a request pending."
    return ""


@login_required
def tool_access_panel(request, slug: str):
    """The panel alone, for htmx refreshes (e.g. after changing the classification)."""
    tool = get_object_or_404(AITool, slug=slug)
    return render(request, "catalog/_tool_access_panel.html", access_panel_context(request, tool))


@login_required
@require_POST
def tool_request_access(request, slug: str):
    """Ask for a team to use the tool. From htmx the panel comes back either way: 200 with "request sent", or
    the refusal's status (400 bad input, 403, 409 not possible now) with its message in the panel."""
    tool = get_object_or_404(AITool, slug=slug)
    team = Team.objects.filter(slug=request.POST.get("team", "")).first()
    error, status = None, 200
    if team is None:
        error, status = "Choose one of your teams.", 400
    else:
        try:
            access_services.access_request_create(
                actor=request.user, tool=tool, team=team, justification=request.POST.get("justification", "")
            )
        except DomainError as exc:
            error, status = " ".join([exc.message, *[m for msgs in exc.errors.values() for m in msgs]]), exc.status_code
    if request.headers.get("HX-Request"):
        context = access_panel_context(request, tool)
        context["request_error"] = error
        context["request_sent"] = error is None
        return render(request, "catalog/_tool_access_panel.html", context, status=status)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"Access to {tool.name} requested for {team.name}.")
    return redirect("goldpath:tool-detail", slug=tool.slug)


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
        "grant_form": getattr(request, GRANT_FORM_ATTR, None) or GrantForm(),
        "classifications": DataClassification.choices,
    }


@login_required
@require_POST
def grant_budget(request, pk: int):
    """Change a grant's monthly model budget (blank: none); the same service as PATCH /api/v1/grants/<id>/."""
    grant = get_object_or_404(selectors.visible_grants(request.user), pk=pk)
    if not perms.can_manage_grants(request.user):
        raise PermissionDenied("Only platform engineers change tool grants.")
    try:
        updated = grant_services.grant_update(
            grant=grant, actor=request.user, budget_usd=request.POST.get("budget_usd")
        )
        budget = f"${updated.budget_usd} a month" if updated.budget_usd is not None else "no budget"
        messages.success(request, f"{grant.team.slug}'s model budget for {grant.tool.name}: {budget}.")
    except DomainError as exc:
        messages.error(request, " ".join([exc.message, *[m for msgs in exc.errors.values() for m in msgs]]))
    return redirect(safe_next(request, reverse("goldpath:team-detail", kwargs={"slug": grant.team.slug})))


@login_required
@require_POST
def grant_revoke(request, pk: int):
    grant = get_object_or_404(selectors.visible_grants(request.user), pk=pk)
    if not perms.can_manage_grants(request.user):
        raise PermissionDenied("Only platform engineers revoke tool access.")
    try:
        grant_services.grant_revoke(grant=grant, actor=request.user, reason=request.POST.get("reason", ""))
        messages.success(request, f"Revoked {grant.team.slug}'s access to {grant.tool.name}.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect(safe_next(request, reverse("goldpath:team-detail", kwargs={"slug": grant.team.slug})))


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
            expires = page_expiry(request.POST.get("expires_at"))
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
    return redirect("goldpath:access-requests")
