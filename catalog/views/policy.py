"""Policy pages: the simulator and the out-of-policy list with its bulk action.

Thin: the simulator is catalog.policy_simulator, the list catalog.out_of_policy, the bulk action
catalog.services.out_of_policy, the same functions the API calls."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods

from .. import permissions as perms
from ..models import AITool, DataClassification, WorkspaceTemplate
from ..out_of_policy import out_of_policy_items, out_of_policy_providers
from ..policy_simulator import simulate
from ..services.errors import DomainError, InvalidInput, NotPermitted
from ..services.out_of_policy import out_of_policy_act, out_of_policy_validate, parse_item
from .rendering import render

SIMULATOR_FIELDS = ("user", "tool", "classification", "template")
FIELD_LABELS = {"items": "Selection", "action": "Action", "reason": "Reason"}


def _error_text(exc: DomainError) -> str:
    details = [str(m) for msgs in exc.errors.values() for m in msgs]
    return " ".join(details) if details else exc.message


@login_required
@require_http_methods(["GET", "POST"])
def simulator(request):
    """The policy simulator form: what would the decision be for this user, tool and context? 403 when asking
    about someone the viewer may not ask about, 400 with field errors for an unknown tool, classification or
    template."""
    context: dict = {
        "tools": AITool.objects.order_by("name"),
        "classifications": DataClassification.choices,
        "templates": WorkspaceTemplate.objects.order_by("slug").values_list("slug", flat=True)[:500],
        "may_ask_anyone": perms.can_read_everything(request.user),
        "form": {"user": request.user.username, "classification": DataClassification.INTERNAL},
        "errors": {},
    }
    status = 200
    if request.method == "POST":
        form = {k: request.POST.get(k, "").strip() for k in SIMULATOR_FIELDS}
        context["form"] = form
        try:
            result = simulate(request.user, **form)
        except NotPermitted as exc:
            context["error"], status = exc.message, 403
        except InvalidInput as exc:
            context["error"], context["errors"], status = _error_text(exc), exc.errors, 400
        else:
            context.update(result=result.decision, subject=result.subject, tool=result.tool, simulation=result)
        if request.headers.get("HX-Request"):
            return render(request, "catalog/_simulator_result.html", context, status=status)
    return render(request, "catalog/simulator.html", context, status=status)


def _list_context(request, **extra) -> dict:
    providers = out_of_policy_providers()
    return {
        "items": out_of_policy_items(request.user),
        "actions": sorted({a for p in providers.values() for a in p.actions}),
        "can_act": perms.can_act_out_of_policy(request.user),
        "errors": [],
        "selected": set(),
        **extra,
    }


@login_required
@require_http_methods(["GET", "POST"])
def out_of_policy(request):
    """The list (GET); a bulk action is asked for (POST), shown for confirmation, and applied only once confirmed
    (POST with `confirm=yes`): nothing changes without that second, explicit step."""
    if request.method == "GET":
        return render(request, "catalog/out_of_policy.html", _list_context(request))
    if not perms.can_act_out_of_policy(request.user):
        raise PermissionDenied("Only platform engineers act on out-of-policy objects.")
    values = request.POST.getlist("item")
    items = [parse_item(v) for v in values]
    action, reason = request.POST.get("action", ""), request.POST.get("reason", "")
    try:
        if request.POST.get("confirm") != "yes":
            bulk = out_of_policy_validate(actor=request.user, action=action, items=items, reason=reason)
            chosen = {(kind, item_id) for kind, ids in bulk.by_kind.items() for item_id in ids}
            listed = [item for item in out_of_policy_items(request.user) if (item.kind, item.id) in chosen]
            context = {"confirming": bulk, "confirm_items": listed, "values": values}
            return render(request, "catalog/out_of_policy.html", _list_context(request, **context))
        result = out_of_policy_act(actor=request.user, action=action, items=items, reason=reason)
    except NotPermitted as exc:
        raise PermissionDenied(exc.message) from exc
    except InvalidInput as exc:
        # a list of pairs: a dict with an "items" key cannot be iterated with `.items` in a template
        errors = [(FIELD_LABELS.get(field, field), msgs) for field, msgs in exc.errors.items()]
        context = _list_context(request, errors=errors, selected=set(values), form={"action": action, "reason": reason})
        return render(request, "catalog/out_of_policy.html", context, status=400)
    done = sum(len(r["done"]) for r in result["results"].values())
    messages.success(request, f"{result['action'].capitalize()}: {done} done.")
    for kind, outcome in result["results"].items():
        for item_id, message in outcome["failed"].items():
            messages.error(request, f"{kind} {item_id}: {message}")
    return redirect("goldpath:out-of-policy")
