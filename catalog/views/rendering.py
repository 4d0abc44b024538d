"""Rendering Goldpath pages: the navigation context comes from here, so a host needs no context processor."""

from __future__ import annotations

from typing import Any

from django.contrib.messages import get_messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render as django_render

from ..conf import base_template, logout_url
from ..context_processors import goldpath as role_context


def page_context(request: HttpRequest) -> dict[str, Any]:
    """What every page reads, whatever context processors the host configured."""
    return {
        **role_context(request),
        "request": request,
        "user": getattr(request, "user", None),
        "messages": get_messages(request),
        "gp_base_template": base_template(),
        "gp_logout_url": logout_url(),
    }


def render(
    request: HttpRequest,
    template_name: str,
    context: dict[str, Any] | None = None,
    content_type: str | None = None,
    status: int | None = None,
) -> HttpResponse:
    """django.shortcuts.render with Goldpath's page context (role, layout, logout URL) added."""
    return django_render(request, template_name, {**page_context(request), **(context or {})}, content_type, status)
