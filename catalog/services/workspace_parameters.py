"""A workspace's parameters: checked against the template version's schema and resolved.

The `repository` parameter is resolved to a registered repository (never a free path or URL), with the
classification that follows from it, and the values of the variables the portal fills itself.

Shared by workspace create and update; a refused repository is an audited decision.
"""

from __future__ import annotations

import json
from typing import Any

from ..gitrefs import ref_error
from ..models import (
    BUILTIN_VARIABLES,
    DataClassification,
    Repository,
    Team,
    TemplateVersion,
    Transition,
    Workspace,
    WorkspaceBuild,
    WorkspaceTemplate,
)
from .errors import InvalidInput
from .repositories import repository_for_use, repository_use_denied

REF_PARAMETERS = frozenset({"ref"})  # template variables whose value must be a git ref name or commit sha
REPOSITORY_PARAMETER = "repository"  # a template variable of this name takes a registered repository's slug


def _check_type(tf_type: str, value: Any) -> str | None:
    t = (tf_type or "any").replace(" ", "")
    if t == "any":
        return None
    if t == "string":
        return None if isinstance(value, str) else "Must be a string."
    if t == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "Must be a number."
    if t == "bool":
        return None if isinstance(value, bool) else "Must be true or false."
    if t.startswith(("list(", "set(", "tuple(")):
        if not isinstance(value, list):
            return "Must be a list."
        inner = t[t.index("(") + 1 : -1]
        if not t.startswith("tuple(") and inner:
            for item in value:
                err = _check_type(inner, item)
                if err:
                    return f"Every item: {err}"
        return None
    if t.startswith(("map(", "object(")):
        return None if isinstance(value, dict) else "Must be an object."
    return None


def validate_parameters(version: TemplateVersion, values: Any) -> dict[str, Any]:
    """Check values against the version's parameter schema; 400 with one message per field."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise InvalidInput("parameters must be an object.", errors={"parameters": ["Must be an object."]})
    schema = {p["name"]: p for p in version.form_parameters}
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for name in values:
        if name in BUILTIN_VARIABLES:
            errors[name] = ["Filled by the portal; it cannot be set."]
        elif name not in schema:
            errors[name] = ["Unknown parameter."]
    for name, spec in schema.items():
        if name not in values:
            if spec.get("required"):
                errors[name] = ["This parameter is required."]
            continue
        value = values[name]
        if value is None and spec.get("required"):
            errors[name] = ["This parameter is required."]
            continue
        err = _check_type(spec.get("type", "any"), value)
        if name in REF_PARAMETERS and value is not None and not err:
            err = ref_error(value)  # a ref reaches git: never an option such as --orphan=x
        if err:
            errors[name] = [err]
        elif spec.get("required") and isinstance(value, str) and not value.strip():
            errors[name] = ["This parameter is required."]
        elif isinstance(value, str) and len(value) > 10_000:
            errors[name] = ["At most 10000 characters."]
        else:
            clean[name] = value
    if errors:
        raise InvalidInput("Some parameters are not valid.", errors={"parameters": errors})
    return clean


def resolve_repository(version: TemplateVersion, clean: dict[str, Any], *, actor: Any, team: Team) -> Repository | None:
    """The registered repository the `repository` parameter names by slug (never a free path or URL: that would
    let a developer clone other teams' checkouts, file:// or services on the worker's network). None when the
    version declares no such parameter or no value is given; 400 under parameters.repository otherwise."""
    if REPOSITORY_PARAMETER not in {p["name"] for p in version.parameters}:
        return None
    slug = clean.get(REPOSITORY_PARAMETER)
    if slug is None or slug == "":
        return None
    try:
        repository = repository_for_use(actor=actor, slug=slug, team=team)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, errors={"parameters": exc.errors}) from exc
    clean[REPOSITORY_PARAMETER] = repository.slug  # the user-facing value stays the slug
    return repository


def workspace_classification(template: WorkspaceTemplate, repository: Repository | None) -> str:
    """The higher of the template's and the repository's data classification."""
    classification = template.data_classification
    if repository is not None and DataClassification.rank(repository.data_classification) > DataClassification.rank(
        classification
    ):
        return repository.data_classification
    return classification


def audit_refused_repository(exc: InvalidInput, actor: Any, parameters: Any) -> None:
    """A refused repository parameter is an audited decision (written after the refused request rolled back)."""
    errors = exc.errors.get("parameters")
    if isinstance(errors, dict) and REPOSITORY_PARAMETER in errors:
        slug = parameters.get(REPOSITORY_PARAMETER) if isinstance(parameters, dict) else None
        repository_use_denied(actor=actor, slug=slug, purpose="workspace")


def builtin_values(workspace: Workspace, build: WorkspaceBuild, home: str) -> dict[str, Any]:
    """The variables the portal fills itself (BUILTIN_VARIABLES: a user can never set them) for one build."""
    return {
        "goldpath_workspace_id": str(workspace.pk),
        "goldpath_workspace_name": workspace.name,
        "goldpath_owner": workspace.owner.username,
        "goldpath_transition": "stop" if build.transition == Transition.STOP else "start",
        "goldpath_tools": json.dumps(build.tools),
        "goldpath_home": home,
    }
