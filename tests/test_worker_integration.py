"""Changes made inside Celery tasks, run by a real worker process on the configured broker."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from catalog.models import AuditEvent, Notification
from catalog.tasks.catalog import tools_review_due
from tests.conftest import wait_for
from tests.factories import ToolFactory, UserFactory

pytestmark = [pytest.mark.integration]


def test_review_due_task_in_worker_writes_audit_event(celery_worker, teams):
    tool = ToolFactory(
        slug="expiring",
        status="approved",
        review_due=timezone.localdate() - dt.timedelta(days=1),
        owner_team=teams["platform"],
    )
    tools_review_due.delay()
    event = wait_for(
        lambda: AuditEvent.objects.filter(verb="tool.review_expired", target_repr="expiring").first(),
        message="the worker to expire the approval",
    )
    assert event.actor_repr == "system"
    assert event.request_id.startswith("task-")
    tool.refresh_from_db()
    assert tool.status == "in_review"


def test_notification_delivered_by_worker_after_commit(celery_worker, api, teams):
    bob = UserFactory(username="bob", role="platform_engineer")
    alice = UserFactory(username="alice", role="developer")
    ToolFactory(slug="gadget", status="in_review", proposed_by=alice, owner_team=teams["platform"])
    response = api(bob).post("/api/v1/tools/gadget/approve/", {"reason": "ok"}, format="json")
    assert response.status_code == 200
    note = wait_for(
        lambda: Notification.objects.filter(event="tool.approve", attempts__gte=1).first(),
        message="the notification task",
    )
    assert note.recipients == ["alice@example.com"]
    assert note.email_status == "sent"


@pytest.mark.django_db
def test_failed_webhook_never_loses_the_decision(api, teams, settings):
    from catalog.tasks.notify import deliver_notification

    settings.GOLDPATH = {**settings.GOLDPATH, "WEBHOOK_URL": "http://127.0.0.1:9/hook", "WEBHOOK_TIMEOUT_S": 1}
    bob = UserFactory(username="bob", role="platform_engineer")
    ToolFactory(
        slug="gadget", status="in_review", proposed_by=UserFactory(username="alice"), owner_team=teams["platform"]
    )
    assert api(bob).post("/api/v1/tools/gadget/approve/", {"reason": "ok"}, format="json").status_code == 200
    note = Notification.objects.get(event="tool.approve")
    assert deliver_notification(note.pk) == "retry"
    note.refresh_from_db()
    assert note.webhook_status == "pending" and note.email_status == "sent"
    assert "webhook" in note.last_error
    assert AuditEvent.objects.filter(verb="tool.approved").exists()
    from catalog.models import AITool

    assert AITool.objects.get(slug="gadget").status == "approved"
