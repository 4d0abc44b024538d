"""Golden-path templates: create, push a version (files kept in the database), validate, publish, activate.

A version is immutable once published (its content hash names it). Validating runs
`terraform init -backend=false` + `validate -json` and parses the variable blocks on a provisioning worker (the
web process never runs Terraform: it may not even have it); publishing validates then publishes (the Celery
tasks in `catalog.tasks.provisioning`, or inline from `template_push`). A version that fails stays `draft` with
the diagnostics. While a check is queued, the draft's `publish_requested_at` is set; the worker clears it when
it has decided, so the template page knows when to stop polling. API, CLI and pages call the same functions.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import audit, permissions
from ..models import AITool, Team, TemplateVersion, TemplateVersionStatus, WorkspaceTemplate
from ..models.workspaces import files_hash
from .errors import InvalidInput, NotPermitted, TransitionNotAllowed

TEXT_SUFFIXES = (".tf", ".tf.json", ".tfvars", ".md", ".sh", ".txt", ".json", ".tpl", ".hcl", ".yaml", ".yml")
SKIP_PARTS = (".terraform", ".git", "__pycache__")  # an installed copy of a golden path has compiled .py files
SKIP_NAMES = (".terraform.lock.hcl", "terraform.tfstate", "terraform.tfstate.backup")


def _require_platform(actor: Any) -> None:
    """`actor=None` is the system (management commands, seed_demo); views always pass the user."""
    if actor is not None and not permissions.can_manage_templates(actor):
        raise NotPermitted("Only platform engineers and admins manage templates.")


def read_folder(path: Path) -> dict[str, str]:
    """path -> text of a template folder's files (no state, caches or lock files)."""
    path = Path(path)
    if not path.is_dir():
        raise InvalidInput(f"{path} is not a folder.", errors={"path": ["Not a folder."]})
    files: dict[str, str] = {}
    for file in sorted(path.rglob("*")):
        rel = file.relative_to(path)
        if any(part in SKIP_PARTS for part in rel.parts) or file.name in SKIP_NAMES or file.is_symlink():
            continue
        if file.is_file():
            try:
                files[rel.as_posix()] = file.read_text()
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"{rel} is not UTF-8 text.", errors={"files": [f"{rel}: not text"]}) from exc
    if not any(name.endswith((".tf", ".tf.json")) for name in files):
        raise InvalidInput("The template has no .tf file.", errors={"files": ["No .tf file found."]})
    return files


def files_from_archive(upload, *, max_bytes: int) -> dict[str, str]:
    """Extract an uploaded .tar.gz/.zip with the runner's safe_extract (refuses absolute paths, `..`,
    links and archives over the size limit) and read its files."""
    from ..runners.archive import ArchiveError, safe_extract

    with tempfile.TemporaryDirectory(prefix="gp-upload-") as tmp:
        try:
            safe_extract(upload, Path(tmp), max_bytes=max_bytes, name=getattr(upload, "name", "") or "")
        except ArchiveError as exc:
            raise InvalidInput(f"Archive refused: {exc}", errors={"archive": [str(exc)]}) from exc
        root = Path(tmp)
        entries = [p for p in root.iterdir()]
        if len(entries) == 1 and entries[0].is_dir() and not list(root.glob("*.tf")):
            root = entries[0]  # a single top folder, as `tar czf x.tgz folder/` makes
        return read_folder(root)


@transaction.atomic
def template_create(
    *,
    actor: Any,
    slug: str,
    name: str,
    description: str = "",
    icon: str = "",
    owner_team: Team | None = None,
    data_classification: str = "internal",
    tools: list[AITool] | None = None,
) -> WorkspaceTemplate:
    _require_platform(actor)
    if WorkspaceTemplate.objects.filter(slug=slug).exists():
        raise InvalidInput("A template with this slug exists.", errors={"slug": ["Already taken."]})
    template = WorkspaceTemplate(
        slug=slug,
        name=name,
        description=description,
        icon=icon,
        owner_team=owner_team,
        data_classification=data_classification,
    )
    try:
        template.full_clean()
    except Exception as exc:  # ValidationError
        raise InvalidInput("The template is not valid.", errors=getattr(exc, "message_dict", {})) from exc
    template.save()
    if tools:
        template.tools.set(tools)
    audit.record(actor=actor, verb="template.created", target=template, payload={"slug": slug, "name": name})
    return template


@transaction.atomic
def template_version_create(
    *, template: WorkspaceTemplate, actor: Any, files: dict[str, str], changelog: str = ""
) -> tuple[TemplateVersion, bool]:
    """A new draft version with these files; the same content pushed again returns the existing version."""
    _require_platform(actor)
    template = WorkspaceTemplate.objects.select_for_update().get(pk=template.pk)
    digest = files_hash(files)
    existing = TemplateVersion.objects.filter(template=template, content_hash=digest).first()
    if existing is not None:
        return existing, False
    last = template.versions.order_by("-number").values_list("number", flat=True).first() or 0
    version = TemplateVersion.objects.create(
        template=template, number=last + 1, files=files, content_hash=digest, changelog=changelog, created_by=actor
    )
    audit.record(
        actor=actor,
        verb="template.version_created",
        target=version,
        payload={"template": template.slug, "number": version.number, "hash": digest, "files": sorted(files)},
    )
    return version, True


VALIDATED = "template.validated"  # a validation-only check ended; payload {"number", "valid", "diagnostics"}
CHECK_VERBS = (VALIDATED, "template.published", "template.publish_failed")


def check_pending(version: TemplateVersion) -> bool:
    """A validation or publication of this draft is queued and no worker has decided yet."""
    return version.status == TemplateVersionStatus.DRAFT and version.publish_requested_at is not None


def _request_check(version: TemplateVersion, actor: Any, *, publish: bool, inline: bool) -> TemplateVersion:
    _require_platform(actor)
    version = TemplateVersion.objects.select_for_update().select_related("template").get(pk=version.pk)
    if version.status != TemplateVersionStatus.DRAFT:
        what = "published" if publish else "validated"
        raise TransitionNotAllowed(f"Version {version.number} is {version.status}; only a draft can be {what}.")
    version.publish_requested_at = timezone.now()
    version.diagnostics = ""  # the previous check's answer is stale now
    version.save(update_fields=["publish_requested_at", "diagnostics"])
    verb = "template.publish_requested" if publish else "template.validation_requested"
    audit.record(actor=actor, verb=verb, target=version, payload={"number": version.number})
    actor_id = getattr(actor, "pk", None)
    if inline:
        transaction.on_commit(lambda: check_version(version.pk, actor_id=actor_id, publish=publish))
    else:
        from ..tasks.provisioning import publish_version, validate_version

        task = publish_version if publish else validate_version
        transaction.on_commit(lambda: task.delay(version.pk, actor_id))
    return version


@transaction.atomic
def template_version_publish(*, version: TemplateVersion, actor: Any, inline: bool = False) -> TemplateVersion:
    """Ask for validation and publication (a Celery task); `inline` runs it now (CLI, seed_demo)."""
    return _request_check(version, actor, publish=True, inline=inline)


@transaction.atomic
def template_version_validate(*, version: TemplateVersion, actor: Any, inline: bool = False) -> TemplateVersion:
    """Ask a worker to validate a draft without publishing it: its diagnostics and parameters are updated."""
    return _request_check(version, actor, publish=False, inline=inline)


def validate_files(files: dict[str, str]) -> tuple[bool, list[dict], str]:
    """Materialise the files (with the workspace agent's, as a build does), `terraform init -backend=false` +
    `validate -json`, parse the variables.

    Returns (ok, parameters, diagnostics text)."""
    from ..runners import terraform as tf
    from ..workspace_agent import support_files

    with tempfile.TemporaryDirectory(prefix="gp-validate-") as tmp:
        workdir = Path(tmp)
        for rel, text in {**files, **support_files()}.items():  # as a build will see them
            target = workdir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        try:
            parameters = tf.parse_variables(workdir)
        except Exception as exc:  # noqa: BLE001 - any parse failure is a diagnostic for the author
            return False, [], f"Could not parse the variable blocks: {exc}"
        try:
            result = tf.validate_module(workdir)
        except tf.TerraformNotFound as exc:
            return False, parameters, str(exc)
        return result.ok, parameters, result.diagnostics


def validate_and_publish(version_id: int, actor_id: int | None = None) -> TemplateVersion | None:
    """The body of the publish task: idempotent (does nothing unless the version is still a draft)."""
    return check_version(version_id, actor_id=actor_id, publish=True)


def check_version(version_id: int, *, actor_id: int | None = None, publish: bool) -> TemplateVersion | None:
    """Validate a draft and, when asked and valid, publish it. Idempotent: does nothing unless still a draft."""
    from django.contrib.auth import get_user_model

    version = TemplateVersion.objects.filter(pk=version_id).select_related("template").first()
    if version is None or version.status != TemplateVersionStatus.DRAFT:
        return version
    ok, parameters, diagnostics = validate_files(version.files)
    if not ok and not diagnostics.strip():
        diagnostics = "Terraform found this version invalid and gave no details."
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    with transaction.atomic():
        version = TemplateVersion.objects.select_for_update().get(pk=version_id)
        if version.status != TemplateVersionStatus.DRAFT:
            return version
        version.parameters = parameters
        version.diagnostics = diagnostics
        if ok and publish:
            version.status = TemplateVersionStatus.PUBLISHED
            version.published_at = timezone.now()
        else:
            version.publish_requested_at = None  # decided: the draft is no longer waiting for a worker
        version.save(update_fields=["parameters", "diagnostics", "status", "published_at", "publish_requested_at"])
        if publish:
            verb = "template.published" if ok else "template.publish_failed"
        else:
            verb = VALIDATED
        audit.record(
            actor=actor,
            verb=verb,
            target=version,
            payload={"number": version.number, "valid": ok, "diagnostics": diagnostics[:2000]},
        )
    return version


def last_checks(versions: list[TemplateVersion]) -> dict[int, dict[str, Any]]:
    """version id -> what its last check said ({"valid", "at", "by"}), from the audit log, for the template page."""
    from ..models import AuditEvent

    ids = [str(v.pk) for v in versions]
    out: dict[int, dict[str, Any]] = {}
    events = AuditEvent.objects.filter(target_type="templateversion", target_id__in=ids, verb__in=CHECK_VERBS)
    for event in events.order_by("-created_at", "-id").only("target_id", "verb", "payload", "created_at", "actor_repr"):
        key = int(event.target_id)
        if key not in out:
            valid = event.payload.get("valid", event.verb == "template.published")
            out[key] = {"valid": bool(valid), "at": event.created_at, "by": event.actor_repr}
    return out


@transaction.atomic
def template_version_activate(*, version: TemplateVersion, actor: Any) -> TemplateVersion:
    _require_platform(actor)
    version = TemplateVersion.objects.select_for_update().select_related("template").get(pk=version.pk)
    if version.status != TemplateVersionStatus.PUBLISHED:
        raise TransitionNotAllowed(f"Version {version.number} is {version.status}; only a published version is active.")
    template = WorkspaceTemplate.objects.select_for_update().get(pk=version.template_id)
    previous = template.active_version_id
    template.active_version = version
    template.save(update_fields=["active_version"])
    audit.record(
        actor=actor,
        verb="template.activated",
        target=version,
        payload={"template": template.slug, "number": version.number, "previous_version_id": previous},
    )
    return version


@transaction.atomic
def template_version_deprecate(*, version: TemplateVersion, actor: Any) -> TemplateVersion:
    _require_platform(actor)
    version = TemplateVersion.objects.select_for_update().select_related("template").get(pk=version.pk)
    if version.status != TemplateVersionStatus.PUBLISHED or version.is_active:
        raise TransitionNotAllowed("Only a published version that is not active can be deprecated.")
    version.status = TemplateVersionStatus.DEPRECATED
    version.save(update_fields=["status"])
    audit.record(actor=actor, verb="template.deprecated", target=version, payload={"number": version.number})
    return version


def template_push(
    *,
    path: Path,
    slug: str,
    actor: Any = None,
    name: str = "",
    description: str = "",
    icon: str = "",
    classification: str = "internal",
    owner_team: str = "",
    tools: list[str] | None = None,
    changelog: str = "",
    publish: bool = True,
    activate: bool = False,
) -> tuple[TemplateVersion, bool, WorkspaceTemplate]:
    """Push a template folder as a version (the template created if missing), publish it inline and optionally
    activate it: the `template_push` command and the demo's golden paths. Idempotent: the same folder pushed
    again finds its version by content hash. Returns (version, created, template)."""
    files = read_folder(path)
    template = WorkspaceTemplate.objects.filter(slug=slug).first()
    if template is None:
        team = Team.objects.filter(slug=owner_team).first() if owner_team else None
        template = template_create(
            actor=actor,
            slug=slug,
            name=name or slug.replace("-", " ").title(),
            description=description,
            icon=icon,
            owner_team=team,
            data_classification=classification,
            tools=list(AITool.objects.filter(slug__in=tools or [])),
        )
    version, created = template_version_create(template=template, actor=actor, files=files, changelog=changelog)
    if publish and version.status == TemplateVersionStatus.DRAFT and created:
        template_version_publish(version=version, actor=actor, inline=True)
        version.refresh_from_db()
    if activate and version.status == TemplateVersionStatus.PUBLISHED and not version.is_active:
        template_version_activate(version=version, actor=actor)
        version.refresh_from_db()
    template.refresh_from_db()
    return version, created, template
