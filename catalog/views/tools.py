"""Catalog pages: the searchable catalog, tool detail, propose a tool, and the review queue.

Tool detail shows its lifecycle actions and versions; the review queue holds tools and versions (version pages:
views.tool_versions). Thin: forms check input, services decide, domain errors become messages (403 for a role
that may not act).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import select_template
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from .. import permissions as perms
from .. import selectors
from ..forms import ReasonForm, ToolEditForm, ToolFilterForm, ToolProposeForm, add_domain_errors
from ..models import AITool, AuditEvent, ToolStatus, ToolVersion, ToolVersionApproval, VersionReview
from ..services import tool_actions
from ..services import tools as tool_services
from ..services.errors import DomainError, NotPermitted
from .rendering import render
from .tool_versions import version_rows

ACCESS_PANEL = "catalog/_tool_access_panel.html"
# decisions shown on a tool's page: the lifecycle table's verbs and the other review events
DECISION_VERBS = (
    "tool.proposed",
    "tool.approval_recorded",
    *tool_actions.VERBS,
    "tool.review_expired",
    "tool_version.proposed",
    "tool_version.changed",
    "tool_version.approved",
    "tool_version.rejected",
)


def available_actions(user, tool: AITool) -> list[dict]:
    """Buttons for the table's actions allowed from the tool's status that the user's role may try."""
    actions = []
    for action in tool_actions.available(user, tool):
        note = ""
        if action.name == "approve" and tool.proposed_by_id == user.pk:
            note = "You proposed this tool; another platform engineer must approve it."
        elif action.name == "approve" and tool.approvals.filter(reviewer=user).exists():
            note = "You already approved this tool; a second, different platform engineer must approve it."
        actions.append(
            {
                "name": action.name,
                "label": action.label,
                "reason_required": action.reason_required,
                "style": action.style,
                "in_review_queue": action.in_review_queue,
                "note": note,
            }
        )
    return actions


def _error_text(exc: DomainError) -> str:
    details = [str(m) for msgs in exc.errors.values() for m in (msgs if isinstance(msgs, list | tuple) else [msgs])]
    return " ".join([exc.message, *details]) if details and exc.message not in details else exc.message


def _filtered_tools(form: ToolFilterForm):
    qs = AITool.objects.select_related("owner_team").order_by("name")
    if not form.is_valid():
        return qs
    data = form.cleaned_data
    qs = selectors.search_tools(qs, data["q"])
    for field in ("status", "kind", "risk_tier", "vendor"):
        if data[field]:
            qs = qs.filter(**{field: data[field]})
    return qs


@login_required
def tool_list(request):
    form = ToolFilterForm(request.GET or None)
    tools = _filtered_tools(form)
    counts = dict(AITool.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    context = {
        "form": form,
        "tools": tools[:500],
        "total": tools.count(),
        "filtered": bool(request.GET and any(request.GET.get(k) for k in form.fields)),
        "can_propose": perms.can_propose_tool(request.user),
        "status_counts": [(value, label, counts.get(value, 0)) for value, label in ToolStatus.choices],
    }
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "tool-results":
        return render(request, "catalog/_tool_results.html", context)
    return render(request, "catalog/tool_list.html", context)


def _versions(**filters):
    return (
        ToolVersion.objects.filter(**filters)
        .select_related("tool", "created_by")
        .prefetch_related(Prefetch("approvals", queryset=ToolVersionApproval.objects.select_related("reviewer")))
    )


def _access_panel_context(request, tool: AITool) -> dict:
    """The policy helper's "can I use this?" panel, when it is installed."""
    try:
        select_template([ACCESS_PANEL])
        from .access import access_panel_context
    except Exception:  # noqa: BLE001 - the panel is optional
        return {}
    return {"access_panel": ACCESS_PANEL, **access_panel_context(request, tool)}


@login_required
def tool_detail(request, slug: str):
    tool = get_object_or_404(AITool.objects.select_related("owner_team", "proposed_by"), slug=slug)
    actions = available_actions(request.user, tool)
    events = AuditEvent.objects.filter(target_type="aitool", target_id=str(tool.pk)).order_by("-created_at", "-id")
    context = {
        "tool": tool,
        "versions": version_rows(request.user, tool, _versions(tool=tool).order_by("-created_at", "-id")),
        "approvals": tool.approvals.select_related("reviewer"),
        "decisions": events.filter(verb__in=DECISION_VERBS)[:100],
        "can_read_audit": perms.can_read_audit(request.user),
        "audit_trail": events[:100] if perms.can_read_audit(request.user) else [],
        "actions": actions,
        "reason_needed_for": [a["label"].lower() for a in actions if a["reason_required"]],
        "can_add_version": perms.can_add_tool_version(request.user, tool)
        and tool.status not in (ToolStatus.RETIRED, ToolStatus.BANNED),
        "can_edit": perms.can_edit_tool(request.user, tool),
        **_access_panel_context(request, tool),
    }
    context["tool"] = tool  # the panel context carries the same tool
    return render(request, "catalog/tool_detail.html", context)


def _run_action(request, tool: AITool, name: str) -> tuple[bool, str, ReasonForm]:
    """Call the action's service (it applies the table's rules: role 403, reason 400, state 409).
    Returns (ok, message, form); a role denial is a 403 page."""
    action = tool_actions.get(name)
    if action is None:
        raise Http404
    if not action.permission(request.user, tool):
        raise PermissionDenied(action.denial)
    form = ReasonForm(request.POST, reason_required=False)  # the service decides whether a reason is needed
    if not form.is_valid():
        return False, f"{action.label}: " + " ".join(form.errors["reason"]), form
    try:
        result = tool_services.tool_act(name=name, tool=tool, actor=request.user, reason=form.cleaned_data["reason"])
    except NotPermitted as exc:
        raise PermissionDenied(exc.message) from exc
    except DomainError as exc:
        add_domain_errors(form, exc)
        return False, _error_text(exc), form
    if isinstance(result, tool_services.ApprovalResult) and not result.complete:
        return (
            True,
            f"Approval recorded ({result.approvals} of {result.required}); another platform engineer "
            f"must approve {tool.name} too.",
            form,
        )
    tool.refresh_from_db()
    return True, f"{tool.name} is now {tool.get_status_display().lower()}.", form


@login_required
@require_POST
def tool_action(request, slug: str, action: str):
    tool = get_object_or_404(AITool, slug=slug)
    ok, message, _ = _run_action(request, tool, action)
    (messages.success if ok else messages.error)(request, message)
    return redirect(reverse("goldpath:review-queue") if request.POST.get("next") == reverse("goldpath:review-queue") else tool_detail_url(tool))


def tool_detail_url(tool: AITool) -> str:
    return reverse("goldpath:tool-detail", kwargs={"slug": tool.slug})


@login_required
@require_http_methods(["GET", "POST"])
def tool_new(request):
    if not perms.can_propose_tool(request.user):
        raise PermissionDenied("Your role may not propose tools.")
    form = ToolProposeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            tool = tool_services.tool_propose(actor=request.user, data=form.service_data())
        except NotPermitted as exc:
            raise PermissionDenied(exc.message) from exc
        except DomainError as exc:
            add_domain_errors(form, exc)
        else:
            messages.success(request, f"{tool.name} proposed. Send it to review when its details are complete.")
            return redirect(tool_detail_url(tool))
    status = 400 if request.method == "POST" else 200
    return render(request, "catalog/tool_form.html", {"form": form}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def tool_edit(request, slug: str):
    """Edit a tool's metadata: the same rule and service as PATCH /api/v1/tools/<slug>/ (platform engineers
    always, the proposer until approval; raising the risk tier of an approved tool sends it back to review)."""
    tool = get_object_or_404(AITool.objects.select_related("owner_team"), slug=slug)
    if not perms.can_edit_tool(request.user, tool):
        raise PermissionDenied("Your role may not edit this tool.")
    form = ToolEditForm(request.POST or None, tool=tool)
    if request.method == "POST" and form.is_valid():
        before = (tool.status, tool.risk_tier, tool.updated_at)
        try:
            updated = tool_services.tool_update(tool=tool, actor=request.user, data=form.service_data())
        except NotPermitted as exc:
            raise PermissionDenied(exc.message) from exc
        except DomainError as exc:
            add_domain_errors(form, exc)
        else:
            if updated.updated_at == before[2]:
                messages.info(request, "Nothing changed.")
            elif updated.status != before[0]:
                messages.warning(
                    request,
                    f"{updated.name} saved. Its risk tier went up from {before[1]} to {updated.risk_tier}, so it is "
                    f"back in review and needs {updated.required_approvals} approval"
                    f"{'s' if updated.required_approvals > 1 else ''} again.",
                )
            else:
                messages.success(request, f"{updated.name} saved.")
            return redirect(tool_detail_url(updated))
    status = 400 if request.method == "POST" else 200
    return render(request, "catalog/tool_form.html", {"form": form, "tool": tool}, status=status)


@login_required
def review_queue(request):
    if not perms.can_review_tools(request.user):
        raise PermissionDenied("The review queue is for platform engineers.")
    tools = (
        AITool.objects.filter(status__in=[ToolStatus.IN_REVIEW, ToolStatus.PROPOSED])
        .select_related("owner_team", "proposed_by")
        .prefetch_related("approvals__reviewer")
        .order_by("updated_at")  # oldest first
    )
    rows = [_review_row(request.user, t) for t in tools]
    versions = _versions(review_state=VersionReview.PROPOSED).order_by("created_at", "id")  # oldest first
    return render(
        request,
        "catalog/review_queue.html",
        {
            "in_review": [r for r in rows if r["tool"].status == ToolStatus.IN_REVIEW],
            "proposed": [r for r in rows if r["tool"].status == ToolStatus.PROPOSED],
            "versions": [row for v in versions[:500] for row in version_rows(request.user, v.tool, [v])],
        },
    )


def _review_row(user, tool: AITool, **extra) -> dict:
    """The queue's row: only the buttons this viewer may press now; why not, as text, for the others."""
    actions = [a for a in available_actions(user, tool) if a["in_review_queue"]]
    return {
        "tool": tool,
        "actions": [a for a in actions if not a["note"]],
        "notes": [a["note"] for a in actions if a["note"]],
        **extra,
    }


@login_required
@require_POST
def review_action(request, slug: str, action: str):
    """Approve/reject/send-to-review from the queue; htmx swaps the row, otherwise redirect."""
    if not perms.can_review_tools(request.user):
        raise PermissionDenied("The review queue is for platform engineers.")
    tool = get_object_or_404(AITool, slug=slug)
    ok, message, form = _run_action(request, tool, action)
    if not request.headers.get("HX-Request"):
        (messages.success if ok else messages.error)(request, message)
        return redirect("goldpath:review-queue")
    tool = AITool.objects.select_related("owner_team", "proposed_by").get(pk=tool.pk)
    row = _review_row(request.user, tool, ok=ok, message=message, form=form, action=action)
    # 200 even for a refusal: htmx swaps only successful responses, and the row shows the message
    return render(request, "catalog/_review_row.html", {"row": row})
