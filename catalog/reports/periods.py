"""The period calendar: days, weeks (from Monday) and months, and how a report range cuts them.

Pure date arithmetic; the SQL that buckets days into periods is `sql.period_sql`.
"""

from __future__ import annotations

import datetime as dt

from .params import ReportParams

Period = tuple[dt.date, dt.date, dt.date]  # (key: the period's first day, first day in range, last day in range)


def period_of(day: dt.date, granularity: str) -> dt.date:
    if granularity == "week":
        return day - dt.timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def next_period(start: dt.date, granularity: str) -> dt.date:
    if granularity == "week":
        return start + dt.timedelta(days=7)
    if granularity == "month":
        return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return start + dt.timedelta(days=1)


def period_last_day(granularity: str, start: dt.date) -> dt.date:
    return next_period(start, granularity) - dt.timedelta(days=1)


def periods(params: ReportParams) -> list[Period]:
    """(key, first day, last day) of each period, clipped to the report range."""
    out = []
    start = period_of(params.date_from, params.granularity)
    while start <= params.date_to:
        nxt = next_period(start, params.granularity)
        out.append((start, max(start, params.date_from), min(nxt - dt.timedelta(days=1), params.date_to)))
        start = nxt
    return out


def whole_periods(
    params: ReportParams, plist: list[Period], today: dt.date
) -> tuple[list[dt.date], list[tuple[dt.date, dt.date]]]:
    """Split periods into whole ones (read from the week/month rollup) and clipped ones (summed from days).
    A period cut only by `to` on or after today is whole: no day after today has events yet. Only the first
    and the last period can be clipped, so the whole ones are consecutive."""
    if params.granularity == "day":
        return [], []
    whole, clipped = [], []
    for key, first, last in plist:
        full_end = next_period(key, params.granularity) - dt.timedelta(days=1)
        if first == key and (last == full_end or last >= today):
            whole.append(key)
        else:
            clipped.append((first, last))
    return whole, clipped


def year_masks(plist: list[Period]) -> list[tuple[str, int, str]]:
    """(period key, year, bit(366) mask text) for each period's days in the range."""
    out = []
    for label, first, last in ((key.isoformat(), first, last) for key, first, last in plist):
        by_year: dict[int, list[str]] = {}
        day = first
        while day <= last:
            bits = by_year.setdefault(day.year, ["0"] * 366)
            bits[day.timetuple().tm_yday - 1] = "1"
            day += dt.timedelta(days=1)
        out.extend((label, year, "".join(bits)) for year, bits in by_year.items())
    return out
