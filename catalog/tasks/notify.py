"""Delivering notifications from the outbox: e-mail and a Slack-compatible webhook."""

from __future__ import annotations

import json
import logging
import urllib.request

from celery import shared_task
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from ..conf import goldpath_settings
from ..models import Notification

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8


def _post_webhook(url: str, note: Notification) -> None:
    text = f"*{note.subject}*\n{note.body}" + (f"\n<{note.link}|Open in Goldpath>" if note.link else "")
    body = json.dumps({"text": text, "event": note.event}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=goldpath_settings.WEBHOOK_TIMEOUT_S) as resp:  # noqa: S310
        if resp.status >= 300:
            raise RuntimeError(f"webhook answered {resp.status}")


@shared_task(name="catalog.tasks.notify.deliver_notification", queue="default")
def deliver_notification(notification_id: int) -> str:
    """Send what is still pending for one notification; a sent channel is never sent again.

    Sending happens outside any transaction (a slow webhook must not hold a database lock);
    the outcome is written afterwards under a row lock.
    """
    note = Notification.objects.filter(pk=notification_id).first()
    if note is None:
        return "missing"
    if note.email_status != Notification.Status.PENDING and note.webhook_status != Notification.Status.PENDING:
        return "done"
    errors: list[str] = []
    outcome: dict[str, str] = {}
    if note.email_status == Notification.Status.PENDING:
        try:
            send_mail(note.subject, note.body + (f"\n\n{note.link}" if note.link else ""), None, note.recipients)
            outcome["email_status"] = Notification.Status.SENT
        except Exception as exc:  # noqa: BLE001 - delivery problems are recorded, never raised
            errors.append(f"email: {exc}")
    if note.webhook_status == Notification.Status.PENDING:
        url = goldpath_settings.WEBHOOK_URL
        try:
            if url:
                _post_webhook(url, note)
            outcome["webhook_status"] = Notification.Status.SENT
        except Exception as exc:  # noqa: BLE001
            errors.append(f"webhook: {exc}")
    with transaction.atomic():
        note = Notification.objects.select_for_update().get(pk=notification_id)
        note.attempts += 1
        for field, value in outcome.items():
            setattr(note, field, value)
        if errors:
            note.last_error = "; ".join(errors)[:2000]
            log.warning("notification %s not delivered: %s", note.pk, note.last_error)
            if note.attempts >= MAX_ATTEMPTS:
                for field in ("email_status", "webhook_status"):
                    if getattr(note, field) == Notification.Status.PENDING:
                        setattr(note, field, Notification.Status.FAILED)
        else:
            note.sent_at = timezone.now()
        note.save()
    return "retry" if errors else "sent"


@shared_task(name="catalog.tasks.notify.retry_pending", queue="default")
def retry_pending() -> int:
    """Periodic: retry notifications whose delivery failed (a down webhook loses nothing)."""
    pending = Notification.objects.filter(attempts__lt=MAX_ATTEMPTS).filter(
        email_status=Notification.Status.PENDING
    ) | Notification.objects.filter(attempts__lt=MAX_ATTEMPTS, webhook_status=Notification.Status.PENDING)
    ids = list(pending.values_list("pk", flat=True)[:500])
    for pk in ids:
        deliver_notification.delay(pk)
    return len(ids)
