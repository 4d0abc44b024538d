"""How the adoption report presents its funnel and its periods.

Each funnel stage with what it counts (so counts and shares are never drawn on one axis), and which periods are
partial (so a chart never shows the current week as a whole one).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

# (stage, label, what one counts). Each stage counts its own thing: they share a count axis, and a share of an
# earlier stage is given only where the two are comparable (FUNNEL_RATES).
FUNNEL = (
    ("requested", "Access requested", "access requests"),
    ("granted", "Access granted", "grants"),
    ("first_use", "First use", "team and tool pairs used for the first time"),
    ("accepted_agent_result", "Agent result accepted", "accepted agent results"),
)
FUNNEL_RATES = {"granted": "requested", "first_use": "granted"}  # stage -> the stage it is a share of


def funnel_stages(*counts: int) -> list[dict[str, Any]]:
    """The funnel as counts with their unit; `rate` (0..1, or None) is a share of the stage `rate_of`."""
    by_stage = {stage: int(n or 0) for (stage, _, _), n in zip(FUNNEL, counts, strict=True)}
    out = []
    for stage, label, unit in FUNNEL:
        base = FUNNEL_RATES.get(stage)
        rate = round(by_stage[stage] / by_stage[base], 4) if base and by_stage[base] else None
        out.append(
            {"stage": stage, "label": label, "unit": unit, "count": by_stage[stage], "rate": rate, "rate_of": base}
        )
    return out


def period_partial(key: dt.date, first: dt.date, last: dt.date, next_start: dt.date, today: dt.date) -> bool:
    """Whether a period's figures cover less than the whole period: the report range cuts it (`first`/`last`
    inside `key`..`next_start`), or it is not over yet (it holds today, so it counts only the days so far)."""
    return first != key or last != next_start - dt.timedelta(days=1) or last >= today
