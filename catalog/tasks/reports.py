"""Report tasks (queue `reports`): fold new usage events into the rollups (periodic, idempotent)."""

from __future__ import annotations

from celery import shared_task

from ..reports.rollup import rollup_usage as _rollup_usage


@shared_task(name="catalog.tasks.reports.rollup_usage", queue="reports")
def rollup_usage(full: bool = False) -> dict:
    """Rebuild the rollup rows of every day touched by events since the watermark."""
    return _rollup_usage(full=full)
