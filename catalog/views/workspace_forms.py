"""The parameter form of a template version, shared by the new-workspace and the edit-parameters pages.

One input per declared parameter (built-ins never shown), values read back with their Terraform types, domain
errors mapped onto the fields they concern.
"""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from .. import safejson
from ..models import TemplateVersion
from ..services.errors import DomainError
from ..services.workspace_parameters import REPOSITORY_PARAMETER

NUMERIC_ERROR = "Must be a number."


def widget(param: dict) -> str:
    t = (param.get("type") or "string").replace(" ", "")
    if param["name"] == REPOSITORY_PARAMETER and t in ("string", "any"):
        return "repository"  # a picker of registered repositories: never a free path or URL
    if t in ("string", "number", "bool"):
        return t
    return "json"


def field_value(param: dict, post: QueryDict) -> tuple[bool, object, str | None]:
    """(present, value, error) for one parameter from the form."""
    name, tf_type = param["name"], (param.get("type") or "string").replace(" ", "")
    if tf_type == "bool":
        return True, post.get(name) == "on", None
    raw = post.get(name, "")
    if raw == "" and not param.get("required"):
        return False, None, None
    if tf_type == "number":
        try:
            return True, (int(raw) if raw.lstrip("-").isdigit() else float(raw)), None
        except ValueError:
            return True, raw, NUMERIC_ERROR
    if tf_type == "string":
        return True, raw, None
    try:
        return True, safejson.loads(raw), None
    except safejson.JSONTooDeep as exc:
        return True, raw, f"Must be JSON {exc.max_depth} levels deep at most."
    except ValueError:
        return True, raw, "Must be JSON."


def read_parameters(
    version: TemplateVersion, post: QueryDict, keep: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]:
    """(parameters, values to show again, field errors) from a POSTed form. `keep`: current values of sensitive
    parameters left blank (a secret is never sent back to the browser, so blank means unchanged)."""
    params: dict[str, Any] = {}
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for p in version.form_parameters:
        name = p["name"]
        if p.get("sensitive") and keep and name in keep and post.get(name, "") == "":
            params[name] = keep[name]
            continue
        present, value, err = field_value(p, post)
        values[name] = value
        if err:
            errors[name] = [err]
        elif present:
            params[name] = value
    return params, values, errors


def domain_errors(exc: DomainError) -> dict[str, list[str]]:
    """A service's refusal as field errors: parameters by name, other fields as they are, policy reasons on tools."""
    nested = exc.errors.get("parameters")
    errors = {**(nested if isinstance(nested, dict) else {})}
    errors.update({k: v for k, v in exc.errors.items() if k != "parameters" or not isinstance(v, dict)})
    if exc.reasons:
        errors["tools"] = [f"{d['tool']}: " + "; ".join(r["message"] for r in d["reasons"]) for d in exc.reasons]
    return errors


def fields(version: TemplateVersion, values: dict[str, Any], errors: dict[str, list[str]]) -> list[dict]:
    """What the `_parameter_fields.html` partial renders: each parameter with its value, errors and widget."""
    return [
        {**p, "value": values.get(p["name"]), "errors": errors.get(p["name"], []), "widget": widget(p)}
        for p in version.form_parameters
    ]
