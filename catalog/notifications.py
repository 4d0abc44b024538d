"""Notifications: an outbox row written with the decision, delivered by a Celery task after commit.

E-mail goes through Django's mail backend, the webhook (Slack-compatible JSON) to
GOLDPATH_WEBHOOK_URL. A failed delivery is retried later and never undoes the decision.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import reverse

from .conf import goldpath_settings
from .models import Notification


def notify(*, event: str, subject: str, body: str, users: Iterable = (), link: str = "") -> Notification:
    """Queue a notification in the caller's transaction; the task is sent once it commits."""
    emails = sorted({u.email for u in users if getattr(u, "email", "")})
    note = Notification.objects.create(
        event=event,
        subject=subject[:200],
        body=body,
        recipients=emails,
        link=link,
        email_status=Notification.Status.PENDING if emails else Notification.Status.SENT,
        webhook_status=(Notification.Status.PENDING if goldpath_settings.WEBHOOK_URL else Notification.Status.SENT),
    )
    from .tasks.notify import deliver_notification

    transaction.on_commit(lambda: deliver_notification.delay(note.pk))
    return note


def platform_engineers():
    from .models import Role

    User = get_user_model()
    return User.objects.filter(is_active=True, profile__role__in=[Role.PLATFORM_ENGINEER]).exclude(email="")


def portal_link(name: str, **kwargs: str) -> str:
    """An absolute link to a Goldpath page: the site's origin (GOLDPATH["PORTAL_URL"]) and the page's path as
    reversed from its URL name, so it carries whatever prefix the host mounts Goldpath under."""
    return goldpath_settings.PORTAL_URL.rstrip("/") + reverse(f"goldpath:{name}", kwargs=kwargs or None)
