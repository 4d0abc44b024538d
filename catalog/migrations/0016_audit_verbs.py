"""Audit verbs in one tense: every verb is past tense (a record of something that happened, e.g. `tool.approved`).
Rewrites the verbs of existing audit rows (the one sanctioned exception to their append-only rule) and records
that it did so as an `audit.verbs_renamed` event. Reversible."""

from django.db import migrations

# old verb -> new verb; verbs already in the past tense (`workspace.created`, `build.succeeded`, `auth.login_failed`,
# `agent_group.accepted`...) keep their name. Where the present form meant "asked for" while a past-tense verb
# already recorded the outcome, the new name says so (`agent_group.accept` -> `agent_group.accept_requested`, next
# to the worker's `agent_group.accepted`; `build.cancel` -> `build.cancel_requested`, next to `build.canceled`).
VERB_RENAMES = {
    "access_request.approve": "access_request.approved",
    "access_request.create": "access_request.created",
    "access_request.reject": "access_request.rejected",
    "agent_group.accept": "agent_group.accept_requested",
    "agent_group.cancel": "agent_group.canceled",
    "agent_group.create": "agent_group.created",
    "agent_group.finish": "agent_group.finished",
    "agent_run.finish": "agent_run.finished",
    "agent_run.report": "agent_run.reported",
    "agent_run.start": "agent_run.started",
    "build.cancel": "build.cancel_requested",
    "grant.create": "grant.created",
    "grant.expire": "grant.expired",
    "grant.expiry_warning": "grant.expiry_warning_sent",
    "grant.revoke": "grant.revoked",
    "grant.update": "grant.updated",
    "repository.create": "repository.created",
    "repository.delete": "repository.deleted",
    "repository.update": "repository.updated",
    "team.create": "team.created",
    "team.delete": "team.deleted",
    "team.update": "team.updated",
    "team.member_add": "team.member_added",
    "team.member_remove": "team.member_removed",
    "token.create": "token.created",
    "token.revoke": "token.revoked",
    "tool.propose": "tool.proposed",
    "tool.request_review": "tool.review_requested",
    "tool.approve": "tool.approved",
    "tool.reject": "tool.rejected",
    "tool.deprecate": "tool.deprecated",
    "tool.retire": "tool.retired",
    "tool.ban": "tool.banned",
    "tool.reinstate": "tool.reinstated",
    "tool.review_due_soon": "tool.review_warning_sent",
    "tool.update": "tool.updated",
    "tool.use": "tool.used",
    "tool_version.approve": "tool_version.approved",
    "tool_version.change": "tool_version.changed",
    "tool_version.propose": "tool_version.proposed",
    "tool_version.reject": "tool_version.rejected",
    "usage.import": "usage.imported",
    "user.create": "user.created",
    "user.set_role": "user.role_changed",
    "vendor_api_key.create": "vendor_api_key.created",
    "vendor_api_key.replace": "vendor_api_key.replaced",
    "vendor_api_key.delete": "vendor_api_key.deleted",
    "workspace.start": "workspace.start_requested",
    "workspace.stop": "workspace.stop_requested",
    "workspace.delete": "workspace.delete_requested",
    "workspace.update": "workspace.update_requested",
}


def _rename(apps, mapping: dict[str, str]) -> dict[str, int]:
    # the historical model's plain manager: the live one refuses updates (append-only)
    events = apps.get_model("catalog", "AuditEvent").objects
    counts = {}
    for old, new in mapping.items():
        n = events.filter(verb=old).update(verb=new)
        if n:
            counts[old] = n
    return counts


def forwards(apps, schema_editor):
    counts = _rename(apps, VERB_RENAMES)
    if counts:
        apps.get_model("catalog", "AuditEvent").objects.create(
            actor=None,
            actor_repr="system",
            verb="audit.verbs_renamed",
            target_type="auditevent",
            target_id="",
            target_repr="audit log",
            payload={"renamed": {old: [VERB_RENAMES[old], n] for old, n in sorted(counts.items())}},
            request_id="migration:0016_audit_verbs",
        )


def backwards(apps, schema_editor):
    _rename(apps, {new: old for old, new in VERB_RENAMES.items()})
    apps.get_model("catalog", "AuditEvent").objects.filter(verb="audit.verbs_renamed").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0014_gateway_runtimes_reviews"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
