"""Audit verbs as words on pages (`{% load goldpath_audit %}`): `tool.approved` -> `approved it`."""

from __future__ import annotations

from typing import Any

from django import template

from ..audit_log import verb_label as _verb_label

register = template.Library()


@register.filter
def verb_label(verb: Any) -> str:
    return _verb_label(str(verb or ""))
