"""Tool version pages: propose a version, change one, and approve or reject one.

Approval and rejection happen from the tool page or the review queue. Thin: forms shape the input,
`services.tool_versions` checks it and decides; domain errors become field errors or messages, a role that may
not act gets a 403.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from .. import permissions as perms
from ..forms import ReasonForm, ToolVersionEditForm, ToolVersionForm, add_domain_errors
from ..models import AITool, ToolStatus, ToolVersion, VersionReview
from ..services import tool_versions
from ..services.errors import DomainError, NotPermitted
from .rendering import render

R = VersionReview
FIELD_LABELS = {
    "runtime": "runtime",
    "launch_command": "launch command",
    "env": "environment",
    "egress_hosts": "egress hosts",
    "model_names": "models",
    "release_notes_url": "release notes link",
    "usage_format": "usage output",
    "per_use_cost": "cost per use",
}


def tool_detail_url(tool: AITool) -> str:
    return reverse("goldpath:tool-detail", kwargs={"slug": tool.slug})


def version_rows(user: Any, tool: AITool, versions) -> list[dict]:
    """Each version with its approvals so far and what this user may do about its review (the buttons)."""
    may_review = perms.can_review_tools(user)
    tool_reviewed = tool.status in (ToolStatus.APPROVED, ToolStatus.DEPRECATED)
    rows = []
    for version in versions:
        approvers = [a.reviewer.username for a in version.approvals.all()]
        can_approve, note = False, ""
        if version.review_state == R.PROPOSED and not tool_reviewed:
            note = "Approved together with the tool when its review completes."
        elif may_review and version.review_state == R.PROPOSED:
            refusal = tool_versions.approval_refusal(user, version)
            if refusal:
                note = refusal
            elif user.username in approvers:
                note = "You approved it; a second, different platform engineer must approve it too."
            else:
                can_approve = True
        rows.append(
            {
                "version": version,
                "approvers": approvers,
                "required": tool.required_approvals,
                "can_approve": can_approve,
                "can_reject": may_review and version.review_state != R.REJECTED,
                "note": note,
            }
        )
    return rows


@login_required
@require_http_methods(["GET", "POST"])
def tool_version_new(request, slug: str):
    tool = get_object_or_404(AITool, slug=slug)
    if not perms.can_add_tool_version(request.user, tool):
        raise PermissionDenied("Your role may not add versions to this tool.")
    form = ToolVersionForm(request.POST or None, can_set_egress=tool_versions.may_set_egress_hosts(request.user, tool))
    if request.method == "POST" and form.is_valid():
        try:
            version = tool_versions.tool_version_add(tool=tool, actor=request.user, data=form.service_data())
        except NotPermitted as exc:
            raise PermissionDenied(exc.message) from exc
        except DomainError as exc:
            add_domain_errors(form, exc)
        else:
            messages.success(
                request,
                f"Version {version.version} of {tool.name} proposed. "
                + (
                    f"It runs once {tool.required_approvals} platform engineer"
                    f"{'s' if tool.required_approvals > 1 else ''} other than you approve it."
                    if tool.status in (ToolStatus.APPROVED, ToolStatus.DEPRECATED)
                    else "It is approved together with the tool."
                ),
            )
            return redirect(tool_detail_url(tool))
    status = 400 if request.method == "POST" else 200
    return render(request, "catalog/tool_version_form.html", {"form": form, "tool": tool}, status=status)


def _saved_message(tool: AITool, before: dict, updated: ToolVersion) -> tuple[Any, str]:
    changed = [f for f in FIELD_LABELS if before[f] != getattr(updated, f)]
    if not changed:
        return messages.info, "Nothing changed."
    if changed == ["egress_hosts"]:
        text = f"Egress hosts of {tool.name} {updated.version} saved."
    else:
        text = f"{tool.name} {updated.version} saved ({', '.join(FIELD_LABELS[f] for f in changed)})."
    if before["review_state"] != updated.review_state:
        return messages.warning, f"{text} What it runs changed, so it is proposed again and needs a new review."
    return messages.success, text


@login_required
@require_http_methods(["GET", "POST"])
def tool_version_edit(request, slug: str, version: str):
    """Change a version: the same rule and service as PATCH /api/v1/tools/<slug>/versions/<version>/ (egress
    hosts: platform engineers and admins only)."""
    tool = get_object_or_404(AITool, slug=slug)
    target = get_object_or_404(ToolVersion, tool=tool, version=version)
    if not perms.can_add_tool_version(request.user, tool):
        raise PermissionDenied("Your role may not change versions of this tool.")
    can_set_egress = tool_versions.may_set_egress_hosts(request.user, tool)
    form = ToolVersionEditForm(request.POST or None, version=target, can_set_egress=can_set_egress)
    if request.method == "POST" and form.is_valid():
        before = {f: getattr(target, f) for f in (*FIELD_LABELS, "review_state")}
        try:
            updated = tool_versions.tool_version_update(version=target, actor=request.user, data=form.service_data())
        except NotPermitted as exc:
            raise PermissionDenied(exc.message) from exc
        except DomainError as exc:
            add_domain_errors(form, exc)
        else:
            level, text = _saved_message(tool, before, updated)
            level(request, text)
            return redirect(tool_detail_url(tool))
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "tool": tool, "version": target, "can_set_egress": can_set_egress}
    return render(request, "catalog/tool_version_edit.html", context, status=status)


@login_required
@require_POST
def tool_version_action(request, slug: str, version: str, action: str):
    """Approve or reject a version (a reason is required on the page; it goes to the audit log)."""
    if action not in ("approve", "reject"):
        raise Http404
    tool = get_object_or_404(AITool, slug=slug)
    target = get_object_or_404(ToolVersion, tool=tool, version=version)
    if not perms.can_review_tools(request.user):
        raise PermissionDenied("Only platform engineers review tool versions.")
    form = ReasonForm(request.POST, reason_required=True)
    back = "/reviews/" if request.POST.get("next") == "/reviews/" else tool_detail_url(tool)
    if not form.is_valid():
        messages.error(request, f"{action.title()} {target.version}: " + " ".join(form.errors["reason"]))
        return redirect(back)
    reason = form.cleaned_data["reason"]
    try:
        if action == "approve":
            result = tool_versions.tool_version_approve(version=target, actor=request.user, reason=reason)
            text = (
                f"{tool.name} {target.version} is approved; agents may run it."
                if result.complete
                else f"Approval recorded ({result.approvals} of {result.required}); another platform engineer must "
                f"approve {tool.name} {target.version} too."
            )
        else:
            tool_versions.tool_version_reject(version=target, actor=request.user, reason=reason)
            text = f"{tool.name} {target.version} is rejected; agents will not run it."
    except NotPermitted as exc:
        raise PermissionDenied(exc.message) from exc
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, text)
    return redirect(back)
