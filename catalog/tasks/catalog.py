"""Catalog housekeeping tasks."""

from __future__ import annotations

from celery import shared_task

from ..services.tools import tools_review_due as _tools_review_due


@shared_task(name="catalog.tasks.catalog.tools_review_due", queue="default")
def tools_review_due() -> dict:
    """Warn before reviews fall due; move expired approvals back to in_review (idempotent per day)."""
    return _tools_review_due()
