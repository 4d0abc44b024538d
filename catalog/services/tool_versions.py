"""Tool versions: propose one, change it, review it (approve/reject), and pick the one an agent run launches.

A version says what runs in a sandbox (its pinned runtime, argv template, environment, models and egress
hosts), so it runs only once `approved`. Every version starts `proposed`: one added while its tool is in review
is approved together with the tool (`versions_approve_with_tool`, called by `tools.tool_approve`); one added to
an approved tool needs `tool.required_approvals` distinct platform engineers of its own, never one of its
authors (the proposer, or anyone who changed what it runs since it was last approved). Changing what it runs
sends an approved (or rejected) version back to `proposed` and clears its approvals. The field rules live in
`tool_version_rules`; each service locks the tool, checks the role (403), the state (409) and writes its audit
event (`tool_version.proposed|changed|approved|rejected`, target: the tool) in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .. import audit, permissions
from ..models import AITool, AuditEvent, ToolStatus, ToolVersion, ToolVersionApproval, VersionReview
from ..runners.egress_policy import validate_patterns
from . import tool_version_rules as rules
from .errors import InvalidInput, NotPermitted, TransitionNotAllowed

S = ToolStatus
R = VersionReview

# what runs in the sandbox: a change to any of these needs a new review
REVIEWED_FIELDS = ("runtime", "launch_command", "env", "egress_hosts", "model_names")
WRITABLE_FIELDS = (*REVIEWED_FIELDS, "release_notes_url", "usage_format", "per_use_cost")
CLEANERS = {
    "runtime": rules.clean_runtime,
    "launch_command": rules.clean_launch_command,
    "env": rules.clean_env,
    "model_names": rules.clean_models,
    "usage_format": rules.clean_usage_format,
}
_UNSET = object()


def _lock(tool: AITool) -> AITool:
    return AITool.objects.select_for_update().select_related("owner_team").get(pk=tool.pk)


def _lock_version(version: ToolVersion) -> ToolVersion:
    return ToolVersion.objects.select_for_update().select_related("tool").get(pk=version.pk)


def may_set_egress_hosts(actor: Any, tool: AITool) -> bool:
    """Egress hosts are sandbox policy (where agent runs may connect): platform engineers and admins only,
    on top of the tool's edit rule; a developer who proposed a tool may not open the network for it."""
    return permissions.is_platform(actor) and permissions.can_edit_tool(actor, tool)


def validate_egress_hosts(value: Any) -> list[str]:
    """Canonical allow-list entries (`host`, `*.suffix`, optional `:port`), or InvalidInput on egress_hosts."""
    canonical, errors = validate_patterns(value)
    if errors:
        raise InvalidInput("Bad egress hosts.", errors={"egress_hosts": errors})
    return canonical


def validate_launch_command(value: Any) -> list[str]:
    """An argv template (see tool_version_rules.clean_launch_command), or InvalidInput on launch_command."""
    try:
        return rules.clean_launch_command(value)
    except rules.FieldError as exc:
        raise InvalidInput("Bad launch command.", errors={"launch_command": exc.messages}) from None


def _clean(data: dict[str, Any], *, current: ToolVersion | None) -> dict[str, Any]:
    """Check every given field (all errors at once); `models` is the API's name of `model_names`."""
    data = dict(data)
    errors: dict[str, list[str]] = {}
    if "models" in data:
        models = data.pop("models")
        if "model_names" in data and data["model_names"] != models:
            errors["models"] = ["Give models or model_names, not both."]
        data["model_names"] = models
    allowed = set(WRITABLE_FIELDS) | ({"version"} if current is None else set())
    for key in sorted(set(data) - allowed):
        errors[key] = ["This field cannot be changed." if key == "version" else "Unknown field."]
    cleaned: dict[str, Any] = {}
    for field, value in data.items():
        if field in errors:
            continue
        try:
            if field == "version":
                cleaned[field] = rules.clean_version(value)
            elif field == "egress_hosts":
                canonical, messages = validate_patterns([] if value is None else value)
                if messages:
                    raise rules.FieldError(*messages)
                cleaned[field] = canonical
            elif field in CLEANERS:
                cleaned[field] = CLEANERS[field](value)
            else:
                cleaned[field] = "" if value is None and field == "release_notes_url" else value
        except rules.FieldError as exc:
            errors.setdefault("models" if field == "model_names" else field, []).extend(exc.messages)
    if current is None and "launch_command" not in data:
        errors["launch_command"] = ["Give the headless launch command (an argv template with {prompt})."]
    runtime = cleaned.get("runtime", current.runtime if current else {})
    models = cleaned.get("model_names", current.model_names if current else [])
    if runtime and not models and "runtime" not in errors and "models" not in errors:
        errors["models"] = ["A version with a runtime names at least one model it may use."]
    if errors:
        raise InvalidInput("The tool version is not valid.", errors=errors)
    return cleaned


def _full_clean(version: ToolVersion) -> None:
    try:
        version.full_clean()
    except ValidationError as exc:
        raise InvalidInput("The tool version is not valid.", errors=exc.message_dict) from exc


def _described(version: ToolVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "runtime": version.runtime,
        "launch_command": version.launch_command,
        "env": version.env,
        "models": version.model_names,
        "egress_hosts": version.egress_hosts,
        "usage_format": version.usage_format,
    }


@transaction.atomic
def tool_version_add(*, tool: AITool, actor: Any, data: dict[str, Any]) -> ToolVersion:
    """Propose a version. It runs once approved: with its tool when the tool's review completes, or on its own
    review when the tool is already approved (or deprecated)."""
    tool = _lock(tool)
    if not permissions.can_add_tool_version(actor, tool):
        raise NotPermitted("Your role may not add versions to this tool.")
    if data.get("egress_hosts") and not may_set_egress_hosts(actor, tool):
        raise NotPermitted("Only platform engineers and admins may set egress hosts.")
    if tool.status in (S.RETIRED, S.BANNED):
        raise TransitionNotAllowed(f"Cannot add a version to a {tool.status} tool.")
    cleaned = _clean(data, current=None)
    if ToolVersion.objects.filter(tool=tool, version=cleaned["version"]).exists():
        raise InvalidInput("Version exists.", errors={"version": ["This version already exists for this tool."]})
    version = ToolVersion(
        tool=tool, created_by=actor if getattr(actor, "pk", None) else None, review_state=R.PROPOSED, **cleaned
    )
    _full_clean(version)
    version.save()
    with_tool = tool.status not in (S.APPROVED, S.DEPRECATED)
    audit.record(
        actor=actor,
        verb="tool_version.proposed",
        target=tool,
        payload={**_described(version), "review_state": version.review_state, "with_tool": with_tool},
    )
    return version


def _json(value: Any) -> Any:
    return value if value is None or isinstance(value, bool | int | float | str | list | dict) else str(value)


@transaction.atomic
def tool_version_update(
    *, version: ToolVersion, actor: Any, data: dict[str, Any] | None = None, egress_hosts: Any = _UNSET
) -> ToolVersion:
    """Change a version (fields absent from `data` are kept). A change to what it runs (REVIEWED_FIELDS) clears
    its approvals and sends an approved or rejected version back to `proposed`. Audited with before and after;
    an unchanged version writes nothing. A sandbox already running keeps what it started with."""
    data = dict(data or {})
    if egress_hosts is not _UNSET:
        data["egress_hosts"] = egress_hosts
    tool = _lock(version.tool)
    if "egress_hosts" in data and not may_set_egress_hosts(actor, tool):
        raise NotPermitted("Only platform engineers and admins may change egress hosts.")
    if not permissions.can_add_tool_version(actor, tool):
        raise NotPermitted("Your role may not change versions of this tool.")
    if not data:
        raise InvalidInput("Nothing to change.", errors={"non_field_errors": ["Give at least one field to change."]})
    version = _lock_version(version)
    cleaned = _clean(data, current=version)
    changes = {}
    for field, after in cleaned.items():
        before = getattr(version, field)
        if before != after:
            changes[field] = [_json(before), _json(after)]
            setattr(version, field, after)
    if not changes:
        return version
    _full_clean(version)
    extra: dict[str, Any] = {}
    needs_review = any(f in REVIEWED_FIELDS for f in changes)
    if needs_review:
        cleared = version.approvals.count()
        version.approvals.all().delete()
        if cleared:
            extra["approvals_cleared"] = cleared
        if version.review_state != R.PROPOSED:
            extra["review_state"] = [version.review_state, R.PROPOSED]
            version.review_state = R.PROPOSED
            version.reviewed_at = None
            version.review_reason = ""
    version.save()
    audit.record(
        actor=actor,
        verb="tool_version.changed",
        target=tool,
        payload={
            "version": version.version,
            "changes": {("models" if k == "model_names" else k): v for k, v in changes.items()},
            "needs_review": needs_review,
            **extra,
        },
    )
    return version


# --- review ---------------------------------------------------------------------------------------


def version_authors(version: ToolVersion) -> set[int]:
    """Who wrote what this version runs now: its proposer and whoever changed a reviewed field since it was
    last approved. None of them may approve it."""
    authors = {version.created_by_id} if version.created_by_id else set()
    events = AuditEvent.objects.filter(
        target_type="aitool",
        target_id=str(version.tool_id),
        verb__in=("tool_version.changed", "tool_version.approved"),
        payload__version=version.version,
    ).order_by("-created_at", "-id")
    for event in events.only("verb", "actor_id", "payload"):
        if event.verb == "tool_version.approved" and event.payload.get("complete"):
            break
        if event.verb == "tool_version.changed" and event.payload.get("needs_review") and event.actor_id:
            authors.add(event.actor_id)
    return authors


def approval_refusal(actor: Any, version: ToolVersion) -> str | None:
    """Why this platform engineer may not approve this version (None: they may try; the state is checked too)."""
    label = f"{version.tool.slug} {version.version}"
    if getattr(actor, "pk", None) == version.created_by_id:
        return f"You proposed {label}; another platform engineer must approve it."
    if getattr(actor, "pk", None) in version_authors(version):
        return f"You changed what {label} runs; another platform engineer must approve it."
    return None


@dataclass
class VersionApprovalResult:
    version: ToolVersion
    approvals: int
    required: int

    @property
    def complete(self) -> bool:
        return self.version.review_state == R.APPROVED


@transaction.atomic
def tool_version_approve(*, version: ToolVersion, actor: Any, reason: str = "") -> VersionApprovalResult:
    """Record one platform engineer's approval; with `tool.required_approvals` distinct ones it is approved."""
    tool = _lock(version.tool)
    if not permissions.can_review_tools(actor):
        raise NotPermitted("Only platform engineers approve tool versions.")
    version = _lock_version(version)
    refusal = approval_refusal(actor, version)
    if refusal:
        raise NotPermitted(refusal)
    label = f"{tool.slug} {version.version}"
    if version.review_state != R.PROPOSED:
        raise TransitionNotAllowed(f"{label} is {version.review_state}; only a proposed version can be approved.")
    if tool.status not in (S.APPROVED, S.DEPRECATED):
        raise TransitionNotAllowed(
            f"{tool.name} is {tool.get_status_display().lower()}; its versions are approved together with the "
            "tool when its review completes."
        )
    if version.approvals.filter(reviewer=actor).exists():
        raise TransitionNotAllowed(
            f"You already approved {label}; a second, different platform engineer must approve it."
        )
    reason = (reason or "").strip()
    ToolVersionApproval.objects.create(version=version, reviewer=actor, reason=reason)
    approvers = list(version.approvals.values_list("reviewer__username", flat=True))
    required = tool.required_approvals
    payload: dict[str, Any] = {
        "version": version.version,
        "approvals": len(approvers),
        "required": required,
        "complete": len(approvers) >= required,
        "reason": reason,
    }
    if len(approvers) >= required:
        version.review_state = R.APPROVED
        version.reviewed_at = timezone.now()
        version.review_reason = reason
        version.save(update_fields=["review_state", "reviewed_at", "review_reason"])
        payload.update({"to": R.APPROVED, "approvers": approvers})
    audit.record(actor=actor, verb="tool_version.approved", target=tool, payload=payload)
    return VersionApprovalResult(version=version, approvals=len(approvers), required=required)


@transaction.atomic
def tool_version_reject(*, version: ToolVersion, actor: Any, reason: str) -> ToolVersion:
    """Reject a proposed version, or withdraw an approved one (runs already started keep going). A change to
    what it runs proposes it again."""
    tool = _lock(version.tool)
    if not permissions.can_review_tools(actor):
        raise NotPermitted("Only platform engineers reject tool versions.")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("A reason is required.", errors={"reason": ["Say why."]})
    version = _lock_version(version)
    if version.review_state == R.REJECTED:
        raise TransitionNotAllowed(f"{tool.slug} {version.version} is already rejected.")
    before = version.review_state
    cleared = version.approvals.count()
    version.approvals.all().delete()
    version.review_state = R.REJECTED
    version.reviewed_at = timezone.now()
    version.review_reason = reason
    version.save(update_fields=["review_state", "reviewed_at", "review_reason"])
    audit.record(
        actor=actor,
        verb="tool_version.rejected",
        target=tool,
        payload={
            "version": version.version,
            "from": before,
            "to": R.REJECTED,
            "reason": reason,
            "approvals_cleared": cleared,
        },
    )
    return version


def versions_approve_with_tool(*, tool: AITool, actor: Any, approver_ids: list[int], reason: str) -> list[str]:
    """Inside `tool_approve`'s transaction, when the tool's own review completes: its proposed versions were
    reviewed with it and are approved too, except those one of the tool's approvers wrote (they keep waiting
    for another engineer). Returns the versions approved."""
    approvers = list(get_user_model().objects.filter(pk__in=approver_ids).values_list("pk", "username"))
    names = [name for _pk, name in approvers]
    now = timezone.now()
    approved: list[str] = []
    for version in ToolVersion.objects.select_for_update().filter(tool=tool, review_state=R.PROPOSED):
        if version_authors(version) & set(approver_ids):
            continue
        version.approvals.all().delete()
        ToolVersionApproval.objects.bulk_create(
            [
                ToolVersionApproval(version=version, reviewer_id=pk, reason="Approved with the tool.")
                for pk, _ in approvers
            ]
        )
        version.review_state = R.APPROVED
        version.reviewed_at = now
        version.review_reason = reason
        version.save(update_fields=["review_state", "reviewed_at", "review_reason"])
        audit.record(
            actor=actor,
            verb="tool_version.approved",
            target=tool,
            payload={
                "version": version.version,
                "with_tool": True,
                "complete": True,
                "to": R.APPROVED,
                "approvers": names,
                "reason": reason,
            },
        )
        approved.append(version.version)
    return approved

