"""A run's model usage as the API and the pages show it: one rule for where its figures come from.

While a run is in flight they are summed live from its ModelCall rows (the gateway writes one per call); once it
has ended they are the sums the worker stored on the run (`AgentRun.model_calls`, `input_tokens`, ...
`models_used`, by `catalog.gateway.metering.finalize_run_usage`). Both count the same way: refused calls are
not model calls (they used no model; the latest refusal's reason is shown), models are sorted. A run that ended
with no stored sums while calls were recorded (the worker died before summing) is summed live too, so spend
never shows as zero when it was not. `demo` says that some
call was answered by the offline demo model (upstream `demo`): no vendor was called. `reported` is what the
agent's CLI printed about itself (`AgentRun.reported_usage`), kept apart from the gateway's own count.

    usage = runs_usage(runs)          # {run id: RunUsage}, one query however many runs
    usage[run.pk].as_api()            # the `usage` object of the API
    group_total(usage.values())       # the group's sums
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, Max, Sum

from ..models import RUN_FINAL, AgentRun, ModelCall

DEMO_UPSTREAM = "demo"
DEMO_LABEL = "answers from the offline demo model — no vendor was called"
SIX_PLACES = Decimal("0.000001")


def money(value: Decimal | int | float | str | None) -> str:
    """Dollars as text with 6 decimals (the precision the gateway prices calls at)."""
    return format(Decimal(str(value or 0)).quantize(SIX_PLACES), "f")


@dataclass(frozen=True)
class RunUsage:
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    models: tuple[str, ...] = ()
    demo: bool = False
    reported: dict[str, Any] = field(default_factory=dict)
    refusal: str = ""
    live: bool = False  # summed from the call rows just now (the run is in flight)

    @property
    def cost(self) -> str:
        return money(self.cost_usd)

    def as_api(self) -> dict[str, Any]:
        return {
            "model_calls": self.model_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cost_usd": self.cost,
            "models": list(self.models),
            "demo": self.demo,
            "reported": dict(self.reported),
        }


@dataclass
class _Calls:
    """One run's call rows, summed."""

    count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    models: set[str] = field(default_factory=set)
    demo: bool = False
    refusal: tuple[int, str] = (0, "")  # (the call's id, its reason): the latest refusal


def _calls_of(run_ids: list[int]) -> dict[int, _Calls]:
    """The call rows of these runs summed per run, in one grouped query."""
    out: dict[int, _Calls] = {}
    if not run_ids:
        return out
    rows = (
        ModelCall.objects.filter(run_id__in=run_ids)
        .order_by()
        .values("run_id", "model", "upstream", "refused")
        .annotate(
            n=Count("id"),
            last=Max("id"),
            inp=Sum("input_tokens"),
            outp=Sum("output_tokens"),
            cr=Sum("cache_read_tokens"),
            cw=Sum("cache_write_tokens"),
            cost=Sum("cost_usd"),
        )
    )
    for row in rows:
        c = out.setdefault(row["run_id"], _Calls())
        if row["refused"]:  # no model answered it
            c.refusal = max(c.refusal, (row["last"], row["refused"]))
            continue
        c.count += row["n"]
        c.input_tokens += row["inp"] or 0
        c.output_tokens += row["outp"] or 0
        c.cache_read_tokens += row["cr"] or 0
        c.cache_write_tokens += row["cw"] or 0
        c.cost_usd += row["cost"] or Decimal(0)
        c.demo = c.demo or row["upstream"] == DEMO_UPSTREAM
        if row["model"]:
            c.models.add(row["model"])
    return out


def _is_live(run: AgentRun, calls: _Calls | None) -> bool:
    if run.status not in RUN_FINAL:
        return True
    return run.model_calls == 0 and calls is not None and calls.count > 0


def _usage(run: AgentRun, calls: _Calls | None) -> RunUsage:
    reported = run.reported_usage if isinstance(run.reported_usage, dict) else {}
    demo = bool(calls and calls.demo)
    if not _is_live(run, calls):
        return RunUsage(
            model_calls=run.model_calls,
            input_tokens=run.input_tokens,
            output_tokens=run.output_tokens,
            cache_read_tokens=run.cache_read_tokens,
            cache_write_tokens=run.cache_write_tokens,
            cost_usd=run.cost_usd or Decimal(0),
            models=tuple(m for m in (run.models_used or []) if isinstance(m, str)),
            demo=demo,
            reported=reported,
            refusal=run.gateway_refusal,
        )
    calls = calls or _Calls()
    return RunUsage(
        model_calls=calls.count,
        input_tokens=calls.input_tokens,
        output_tokens=calls.output_tokens,
        cache_read_tokens=calls.cache_read_tokens,
        cache_write_tokens=calls.cache_write_tokens,
        cost_usd=calls.cost_usd.quantize(SIX_PLACES),
        models=tuple(sorted(calls.models)),
        demo=demo,
        reported=reported,
        refusal=run.gateway_refusal or calls.refusal[1],
        live=True,
    )


def runs_usage(runs: Iterable[AgentRun]) -> dict[int, RunUsage]:
    """Each run's usage by run id (the runs' usage fields must be loaded: do not defer them)."""
    runs = list(runs)
    calls = _calls_of([r.pk for r in runs])
    return {r.pk: _usage(r, calls.get(r.pk)) for r in runs}


def run_usage(run: AgentRun) -> RunUsage:
    return runs_usage([run])[run.pk]


def group_total(usages: Iterable[RunUsage]) -> RunUsage:
    """The sums over a group's runs (every model used; demo if any run's calls were answered by the demo model)."""
    total: dict[str, Any] = {k: 0 for k in ("model_calls", "input_tokens", "output_tokens")}
    total.update(cache_read_tokens=0, cache_write_tokens=0, cost_usd=Decimal(0))
    models: set[str] = set()
    demo = live = False
    for u in usages:
        for key in total:
            total[key] += getattr(u, key)
        models.update(u.models)
        demo, live = demo or u.demo, live or u.live
    return RunUsage(**total, models=tuple(sorted(models)), demo=demo, live=live)
