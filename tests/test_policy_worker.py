"""The decision is taken again inside the worker: a revocation between queueing and running stops the use."""

from __future__ import annotations

import pytest

from catalog.models import AuditEvent
from catalog.services import access
from catalog.tasks.policy import check_use
from tests.conftest import wait_for
from tests.factories import ToolFactory

pytestmark = [pytest.mark.integration]


def test_revoked_grant_stops_a_queued_action(celery_worker, people, teams):
    kept = ToolFactory(slug="aider", status="approved")
    revoked = ToolFactory(slug="claude-code", status="approved")
    access.grant_create(actor=people["bob"], team=teams["payments"], tool=kept)
    grant = access.grant_create(actor=people["bob"], team=teams["payments"], tool=revoked)
    alice = people["alice"]
    # queued while allowed; the worker picks them up after the revocation below
    check_use.apply_async((alice.pk, revoked.pk, "internal", "agent_run.launch"), countdown=2)
    check_use.apply_async((alice.pk, kept.pk, "internal", "agent_run.launch"), countdown=2)
    access.grant_revoke(grant=grant, actor=people["frank"], reason="security incident")
    denied = wait_for(
        lambda: AuditEvent.objects.filter(verb="tool.use_denied", target_repr="claude-code").first(),
        timeout=30,
        message="the worker to record the denied use",
    )
    allowed = wait_for(
        lambda: AuditEvent.objects.filter(verb="tool.used", target_repr="aider").first(),
        timeout=30,
        message="the worker to record the allowed use",
    )
    assert denied.payload["reasons"][0]["code"] == "no_grant"
    assert denied.payload["action"] == "agent_run.launch" and denied.actor_repr == "alice"
    assert denied.request_id.startswith("task-")
    assert allowed.payload["allowed"] is True
