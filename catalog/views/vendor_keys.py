"""Vendor API keys page (platform engineers and admins, like the API): keys per team and tool, masked.

Add, replace (rotate) and delete through the services. The key itself is never rendered back."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_http_methods, require_POST

from .. import permissions as perms
from ..forms import VendorApiKeyForm, add_domain_errors
from ..masking import masked_tail
from ..models import VendorApiKey
from ..services import vendor_keys as agent_services
from ..services.errors import DomainError, NotPermitted
from .rendering import render

DENIED = "Only platform engineers and admins manage vendor API keys."


def _managers_only(request) -> None:
    if not perms.can_manage_vendor_keys(request.user):
        raise PermissionDenied(DENIED)


@login_required
@require_http_methods(["GET", "POST"])
def vendor_keys(request):
    _managers_only(request)
    if request.method == "POST":
        form = VendorApiKeyForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                key = agent_services.vendor_api_key_set(
                    team=data["team"],
                    tool=data["tool"],
                    actor=request.user,
                    env_var=data["env_var"],
                    value=data["value"],
                )
            except NotPermitted as exc:
                raise PermissionDenied(exc.message) from exc
            except DomainError as exc:
                add_domain_errors(form, exc)
            else:
                messages.success(
                    request, f"Stored {key.env_var} for {key.team.slug} × {key.tool.slug} ({masked_tail(key.last4)})."
                )
                return redirect("goldpath:vendor-keys")
    else:
        # "Rotate" links prefill team, tool and variable; the key is always typed again
        initial = {k: request.GET[k] for k in ("team", "tool", "env_var") if request.GET.get(k)}
        form = VendorApiKeyForm(initial=initial)
    keys = (
        VendorApiKey.objects.select_related("team", "tool", "created_by")
        .defer("ciphertext")
        .order_by("team__slug", "tool__slug")
    )
    rows = [{"key": k, "masked": masked_tail(k.last4)} for k in keys]
    return render(
        request,
        "catalog/vendor_keys.html",
        {"rows": rows, "form": form, "rotating": bool(form.initial.get("tool"))},
        status=400 if form.is_bound else 200,
    )


@login_required
@require_POST
def vendor_key_delete(request, pk: int):
    _managers_only(request)
    key = get_object_or_404(VendorApiKey.objects.select_related("team", "tool"), pk=pk)
    label = f"{key.env_var} of {key.team.slug} × {key.tool.slug}"
    try:
        agent_services.vendor_api_key_delete(key=key, actor=request.user)
    except NotPermitted as exc:
        raise PermissionDenied(exc.message) from exc
    messages.success(request, f"Deleted {label}; runs of that tool for the team get no key until a new one is stored.")
    return redirect("goldpath:vendor-keys")
