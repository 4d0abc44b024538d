"""Branded error pages (403, 404, 500) for a host's handler403/404/500.

Plain HTML that needs no database, the session or the static files, so the 500 page renders whatever failed. A
client asking for JSON gets JSON.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.urls import NoReverseMatch, reverse

MAX_REASON = 300


def _home() -> str:
    try:
        return reverse("goldpath:tool-list")
    except NoReverseMatch:
        return "/"


def _wants_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def _page(
    request: HttpRequest, status: int, title: str, message: str, *, reason: str = "", hint: str = ""
) -> HttpResponse:
    request_id = getattr(request, "request_id", "") or ""
    if _wants_json(request):
        body = {"detail": reason or message, **({"request_id": request_id} if request_id else {})}
        return JsonResponse(body, status=status)
    context = {
        "status": status,
        "title": title,
        "message": message,
        "reason": reason,
        "hint": hint,
        "home_url": _home(),
        "request_id": request_id,
    }
    return HttpResponse(loader.render_to_string("goldpath/error.html", context, request=None), status=status)


def _reason(exception: Exception | None) -> str:
    """The PermissionDenied message a view wrote for people ("The review queue is for platform engineers.")."""
    text = str(exception or "").strip()
    return text if 0 < len(text) <= MAX_REASON else ""


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _page(
        request,
        403,
        "Not allowed",
        "Your role does not allow this page or action.",
        reason=_reason(exception),
        hint="If you need it, ask a platform engineer or an admin.",
    )


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _page(
        request,
        404,
        "Page not found",
        "There is nothing here, or nothing you may see. It may have been moved or deleted.",
        hint="Check the address, or start again from the catalog.",
    )


def server_error(request: HttpRequest) -> HttpResponse:
    return _page(
        request,
        500,
        "Something went wrong",
        "Goldpath could not finish this request. The error has been logged; try again in a moment.",
        hint="If it keeps happening, give a platform engineer the reference below.",
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a form posted from a page that is out of date (signed in or out elsewhere, or an old tab)."""
    return _page(
        request,
        403,
        "This form has expired",
        "The page you sent it from is out of date, so nothing was changed.",
        hint="Reload the page and try again.",
    )
