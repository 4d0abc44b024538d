"""Repository registry: platform engineers register git repositories for teams.

Agent groups and workspaces name one by slug (`repository_for_use`), never a free path or URL.

The stored credential is Fernet-encrypted, never returned, and never written to the audit log (only its
last 4 characters). Every write is atomic and audited.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction
from django.db.models import ProtectedError

from .. import audit, permissions
from ..gitrefs import is_valid_ref
from ..models import DataClassification, Repository, Team
from ..repository_urls import validate_url
from .errors import InvalidInput, NotPermitted, TransitionNotAllowed

SLUG_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?$")
MAX_CREDENTIAL = 20000
FIELDS = ("slug", "name", "url", "teams", "data_classification", "default_branch", "credential")


def can_manage_repositories(user: Any) -> bool:
    """Registering and changing repositories: platform engineers and admins."""
    return permissions.is_platform(user)


def can_use_repository(user: Any, repository: Repository) -> bool:
    """Members of one of the repository's teams; platform engineers and admins use any."""
    from ..selectors import team_ids_of

    if permissions.role_of(user) is None or not getattr(user, "is_active", False):
        return False
    if permissions.is_platform(user):
        return True
    return repository.teams.filter(pk__in=team_ids_of(user)).exists()


def _require_manager(actor: Any) -> None:
    if not can_manage_repositories(actor):
        raise NotPermitted("Only platform engineers and admins register and change repositories.")


def valid_ref_name(name: str) -> bool:
    """A ref name by catalog.gitrefs (git check-ref-format, never an option) that fits the 250-character field."""
    return is_valid_ref(name) and len(name) <= 250


def _clean(data: dict[str, Any], *, instance: Repository | None) -> tuple[dict[str, Any], list[Team] | None]:
    """Validate the given fields; raise InvalidInput with every field error at once."""
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    teams: list[Team] | None = None
    if "slug" in data:
        slug = data["slug"] if isinstance(data["slug"], str) else ""
        if instance is not None and slug != instance.slug:
            errors["slug"] = ["The slug cannot be changed."]
        elif not SLUG_RE.match(slug):
            errors["slug"] = ["Use 1-50 lowercase letters, digits and hyphens, starting and ending with one."]
        elif instance is None and Repository.objects.filter(slug=slug).exists():
            errors["slug"] = ["A repository with this slug already exists."]
        clean["slug"] = slug
    if "name" in data:
        name = data["name"].strip() if isinstance(data["name"], str) else ""
        if not name or len(name) > 200:
            errors["name"] = ["Give a name of 1-200 characters."]
        clean["name"] = name
    if "url" in data:
        try:
            clean["url"] = validate_url(data["url"])
        except ValueError as exc:
            errors["url"] = [str(exc)]
    if "teams" in data:
        slugs = data["teams"]
        if not isinstance(slugs, list | tuple) or not all(isinstance(s, str) for s in slugs) or not slugs:
            errors["teams"] = ["Share the repository with at least one team (a list of team slugs)."]
        else:
            teams = list(Team.objects.filter(slug__in=set(slugs)).order_by("slug"))
            missing = sorted(set(slugs) - {t.slug for t in teams})
            if missing:
                errors["teams"] = [f"No team named {', '.join(missing)}."]
    if "data_classification" in data:
        if data["data_classification"] not in DataClassification.values:
            errors["data_classification"] = [f"Choose one of: {', '.join(DataClassification.values)}."]
        clean["data_classification"] = data["data_classification"]
    if "default_branch" in data:
        branch = data["default_branch"] if isinstance(data["default_branch"], str) else ""
        if not valid_ref_name(branch):
            errors["default_branch"] = ["Give a valid git branch name (not starting with '-')."]
        clean["default_branch"] = branch
    if "credential" in data and data["credential"] is not None:
        credential = data["credential"]
        if not isinstance(credential, str) or len(credential) > MAX_CREDENTIAL:
            errors["credential"] = [f"Give the credential as text of at most {MAX_CREDENTIAL} characters."]
        else:
            clean["credential"] = credential if credential.strip() else ""
    if errors:
        raise InvalidInput("The repository is not valid.", errors=errors)
    return clean, teams


def _set_credential(repository: Repository, value: str) -> None:
    from ..agents.crypto import encrypt

    repository.credential_ciphertext = encrypt(value) if value else ""
    repository.credential_last4 = value.strip()[-4:] if value else ""


def _payload(repository: Repository) -> dict[str, Any]:
    return {
        "slug": repository.slug,
        "name": repository.name,
        "url": repository.url,
        "teams": sorted(t.slug for t in repository.teams.all()),
        "data_classification": repository.data_classification,
        "default_branch": repository.default_branch,
        "last4": repository.credential_last4,
    }


@transaction.atomic
def repository_create(
    *,
    actor: Any,
    slug: str,
    name: str,
    url: str,
    teams: list[str],
    data_classification: str = DataClassification.INTERNAL,
    default_branch: str = "main",
    credential: str | None = None,
) -> Repository:
    """Register a repository for some teams (platform engineers, admins)."""
    _require_manager(actor)
    data = {
        "slug": slug,
        "name": name,
        "url": url,
        "teams": teams,
        "data_classification": data_classification,
        "default_branch": default_branch,
        "credential": credential,
    }
    clean, team_objs = _clean(data, instance=None)
    repository = Repository(
        slug=clean["slug"],
        name=clean["name"],
        url=clean["url"],
        data_classification=clean["data_classification"],
        default_branch=clean["default_branch"],
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    _set_credential(repository, clean.get("credential", ""))
    repository.save()
    repository.teams.set(team_objs or [])
    audit.record(actor=actor, verb="repository.created", target=repository, payload=_payload(repository))
    return repository


@transaction.atomic
def repository_update(*, repository: Repository, actor: Any, **changes: Any) -> Repository:
    """Change some fields. `credential`: None keeps it, "" clears it, a value replaces it."""
    _require_manager(actor)
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise InvalidInput("Unknown fields.", errors={k: ["Unknown field."] for k in unknown})
    repository = Repository.objects.select_for_update().get(pk=repository.pk)
    clean, team_objs = _clean(changes, instance=repository)
    diff: dict[str, list[Any]] = {}
    for field in ("name", "url", "data_classification", "default_branch"):
        if field in clean and clean[field] != getattr(repository, field):
            diff[field] = [getattr(repository, field), clean[field]]
            setattr(repository, field, clean[field])
    payload: dict[str, Any] = {}
    if "credential" in clean:
        old_last4 = repository.credential_last4
        _set_credential(repository, clean["credential"])
        payload["last4"] = [old_last4, repository.credential_last4]  # never the value itself
    if team_objs is not None:
        old = sorted(t.slug for t in repository.teams.all())
        new = [t.slug for t in team_objs]
        if old != new:
            diff["teams"] = [old, new]
            repository.teams.set(team_objs)
    if diff or payload:
        repository.save()
        changed = sorted([*diff, *(["credential"] if payload else [])])
        audit.record(
            actor=actor,
            verb="repository.updated",
            target=repository,
            payload={"changes": diff, "changed_fields": changed, **payload},
        )
    return repository


def _in_use(repository: Repository) -> list[str]:
    """What still refers to the repository (agent groups, workspaces, ...): the verbose names of every model
    with a relation to it that has rows for it. Empty when it may be deleted."""
    users = []
    for rel in Repository._meta.related_objects:
        if rel.related_model._meta.auto_created:
            continue  # the teams link table
        filters = {rel.field.name: repository}
        if rel.related_model._default_manager.filter(**filters).exists():
            users.append(str(rel.related_model._meta.verbose_name_plural))
    return users


@transaction.atomic
def repository_delete(*, repository: Repository, actor: Any) -> None:
    """Unregister a repository nothing uses any more (409 while agent groups or workspaces name it)."""
    _require_manager(actor)
    repository = Repository.objects.select_for_update().get(pk=repository.pk)
    users = _in_use(repository)
    if users:
        raise TransitionNotAllowed(f"The repository is still used by {', '.join(users)}; it cannot be deleted.")
    payload = _payload(repository)
    pk = repository.pk
    try:
        repository.delete()
    except ProtectedError as exc:
        raise TransitionNotAllowed("The repository is still in use; it cannot be deleted.") from exc
    audit.record(
        actor=actor,
        verb="repository.deleted",
        target_type="repository",
        target_id=pk,
        target_repr=payload["slug"],
        payload=payload,
    )


def repository_for_use(*, actor: Any, slug: str, team: Team | None = None) -> Repository:
    """The repository an agent group or workspace may use, by slug; the same error whether it does not
    exist or the actor's teams may not use it, so slugs of other teams' repositories do not leak. With `team`,
    the repository must also be registered for that team (platform engineers may use any)."""
    repository = None
    if isinstance(slug, str) and SLUG_RE.match(slug):
        repository = Repository.objects.filter(slug=slug).first()
    if repository is None or not can_use_repository(actor, repository):
        shown = slug[:100] if isinstance(slug, str) else ""
        raise InvalidInput(
            "Unknown repository.", errors={"repository": [f"No repository {shown} is registered for your teams."]}
        )
    if team is not None and not permissions.is_platform(actor) and not repository.teams.filter(pk=team.pk).exists():
        message = f"Repository {repository.slug} is not registered for team {team.slug}."
        raise InvalidInput(message, errors={"repository": [message]})
    return repository


def repository_use_denied(*, actor: Any, slug: Any, purpose: str) -> None:
    """Audit a refused use of a repository (another team's, a path, a URL): written in its own transaction by the
    caller after the refused request rolled back, so the refusal stays in the audit log."""
    shown = str(slug)[:200] if slug is not None else ""
    audit.record(
        actor=actor,
        verb="repository.use_denied",
        target_type="repository",
        target_repr=shown,
        payload={"repository": shown, "for": purpose},
    )
