"""Web pages (Django templates + htmx): thin views over selectors and services."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme


def safe_next(request: HttpRequest, default: str, *, field: str = "next") -> str:
    """Where to go after a form: the `next` the page sent (POST, then GET) when it stays on this site,
    else `default`. An off-site (`https://evil.example/`, `//evil.example`) or odd value is ignored."""
    candidate = request.POST.get(field) or request.GET.get(field) or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default
