"""Time-to-ready histogram buckets: how a build's duration maps to a bucket, and back, in Python and SQL.

1 s buckets below 60 s, 5 s to 300 s, 30 s to 30 min, 5 min to 2 h, then one bucket. The rollup stores
counts per bucket; the report reads a median from them at this resolution.
"""

from __future__ import annotations

from django.db import connection

_BANDS = [(0.0, 60.0, 1.0), (60.0, 300.0, 5.0), (300.0, 1800.0, 30.0), (1800.0, 7200.0, 300.0)]


def _band_offsets() -> list[tuple[float, float, float, int]]:
    out, offset = [], 0
    for lo, hi, width in _BANDS:
        out.append((lo, hi, width, offset))
        offset += int((hi - lo) / width)
    return out


BAND_OFFSETS = _band_offsets()
LAST_BUCKET = BAND_OFFSETS[-1][3] + int((BAND_OFFSETS[-1][1] - BAND_OFFSETS[-1][0]) / BAND_OFFSETS[-1][2])


def ready_bucket(seconds: float) -> int:
    for lo, hi, width, offset in BAND_OFFSETS:
        if seconds < hi:
            return offset + int((max(seconds, lo) - lo) // width)
    return LAST_BUCKET


def bucket_value(bucket: int) -> float:
    """The middle of a bucket, in seconds (the median is read at this resolution)."""
    for lo, hi, width, offset in BAND_OFFSETS:
        count = int((hi - lo) / width)
        if bucket < offset + count:
            return lo + (bucket - offset) * width + width / 2
    return BAND_OFFSETS[-1][1]


def bucket_sql(column: str) -> str:
    """`ready_bucket` in SQL: the bucket of a duration column."""
    floor = "FLOOR({})" if connection.vendor == "postgresql" else "CAST({} AS INTEGER)"
    parts = []
    for lo, hi, width, offset in BAND_OFFSETS:
        expr = floor.format(f"({column} - {lo}) / {width}")
        parts.append(f"WHEN {column} < {hi} THEN {offset} + {expr}")
    return f"CASE WHEN {column} < 0 THEN 0 {' '.join(parts)} ELSE {LAST_BUCKET} END"


def bucket_value_sql(column: str) -> str:
    """`bucket_value` in SQL: the middle of a time-to-ready bucket, in seconds."""
    parts = []
    for lo, hi, width, offset in BAND_OFFSETS:
        count = int((hi - lo) / width)
        parts.append(f"WHEN {column} < {offset + count} THEN {lo} + ({column} - {offset}) * {width} + {width / 2}")
    return f"CASE {' '.join(parts)} ELSE {BAND_OFFSETS[-1][1]} END"
