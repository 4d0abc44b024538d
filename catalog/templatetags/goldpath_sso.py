"""`{% load goldpath_sso %}{% goldpath_sso as sso %}` for a login page (the standalone portal's or a host's):
whether to show "Sign in with <name>", its URL, and whether passwords are accepted."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from ..sso.config import display_name, local_passwords_enabled, sso_enabled

register = template.Library()


@register.simple_tag
def goldpath_sso() -> dict[str, Any]:
    enabled = sso_enabled()
    return {
        "enabled": enabled,
        "name": display_name(),
        "login_url": reverse("goldpath:sso-login") if enabled else "",
        "local_passwords": local_passwords_enabled(),
    }
