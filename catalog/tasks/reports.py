"""Report tasks (queue `reports`): fold new usage events into the rollups, store cut periods (idempotent)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from ..reports.cuts import store_cut_report as _store_cut_report
from ..reports.rollup import rollup_usage as _rollup_usage


@shared_task(name="catalog.tasks.reports.rollup_usage", queue="reports")
def rollup_usage(full: bool = False) -> dict:
    """Rebuild the rollup rows of every day touched by events since the watermark."""
    return _rollup_usage(full=full)


@shared_task(name="catalog.tasks.reports.store_cut_report", queue="reports")
def store_cut_report(kind: str, start: str, first_day: str, last_day: str) -> bool:
    """Store the report of a cut period a report asked for (a no-op if one that holds is stored already).
    `start` is the period's key, checked against the days: a cut is always within one week or month."""
    first, last = dt.date.fromisoformat(first_day), dt.date.fromisoformat(last_day)
    if dt.date.fromisoformat(start) > first:
        raise ValueError(f"{first_day} is before the {kind} starting {start}")
    return _store_cut_report(kind, first, last)
