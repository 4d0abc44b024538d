"""Model prices: USD per million tokens (input, output, cache_read, cache_write), the vendors' list prices.

Defaults below, merged with settings GOLDPATH["MODEL_PRICES"] (a model's entry there may give only some
fields; the others come from the default entry of that model, else from its own `input` price). A dated
snapshot (`claude-sonnet-4-5-20250929`, `gpt-4.1-2025-04-14`) is priced as its alias. Unknown models are
priced by the `default` entry, deliberately high (the dearest listed model) so budgets err on the safe side.

Token counts never overlap: `input` is the uncached input, `cache_read` / `cache_write` are priced apart
(OpenAI's cached tokens are subtracted from its input count by the meter). OpenAI does not charge cache
writes; its `cache_write` is its input price (never used: OpenAI reports no cache writes).
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache

from ..conf import goldpath_settings

FIELDS = ("input", "output", "cache_read", "cache_write")
SIX_PLACES = Decimal("0.000001")
MILLION = Decimal(1_000_000)

DEFAULT_PRICES: dict[str, dict[str, str]] = {
    # Anthropic (cache_write: 5-minute cache writes, 1.25x input; cache_read: 0.1x input)
    "claude-opus-4-1": {"input": "15", "output": "75", "cache_read": "1.50", "cache_write": "18.75"},
    "claude-sonnet-4-5": {"input": "3", "output": "15", "cache_read": "0.30", "cache_write": "3.75"},
    "claude-haiku-4-5": {"input": "1", "output": "5", "cache_read": "0.10", "cache_write": "1.25"},
    # OpenAI (cache_read: cached input)
    "gpt-5": {"input": "1.25", "output": "10", "cache_read": "0.125", "cache_write": "1.25"},
    "gpt-5-codex": {"input": "1.25", "output": "10", "cache_read": "0.125", "cache_write": "1.25"},
    # the seeded Codex CLI's default model (the model Codex 0.171 knows best): priced as gpt-5 until its list price is
    # configured (GOLDPATH["MODEL_PRICES"])
    "gpt-5.5": {"input": "1.25", "output": "10", "cache_read": "0.125", "cache_write": "1.25"},
    "gpt-5-mini": {"input": "0.25", "output": "2", "cache_read": "0.025", "cache_write": "0.25"},
    "gpt-4.1": {"input": "2", "output": "8", "cache_read": "0.50", "cache_write": "2"},
    "gpt-4.1-mini": {"input": "0.40", "output": "1.60", "cache_read": "0.10", "cache_write": "0.40"},
    "o4-mini": {"input": "1.10", "output": "4.40", "cache_read": "0.275", "cache_write": "1.10"},
    # anything else: the dearest model above
    "default": {"input": "15", "output": "75", "cache_read": "1.50", "cache_write": "18.75"},
}

# a dated snapshot of an alias: claude-sonnet-4-5-20250929, gpt-4.1-2025-04-14
SNAPSHOT = re.compile(r"(?P<alias>.+?)-(?:\d{8}|\d{4}-\d{2}-\d{2})")  # use fullmatch (no trailing newline)


def _entry(raw: dict, base: dict[str, Decimal] | None) -> dict[str, Decimal]:
    values: dict[str, Decimal] = {}
    for name in FIELDS:
        if name in raw and raw[name] is not None:
            values[name] = Decimal(str(raw[name]))
        elif base is not None:
            values[name] = base[name]
    for name in FIELDS:  # a partial entry for a new model: missing cache prices default to its input price
        values.setdefault(name, values.get("input", Decimal(0)))
    return values


@lru_cache(maxsize=8)
def _table(configured: tuple) -> dict[str, dict[str, Decimal]]:
    table = {model: _entry(prices, None) for model, prices in DEFAULT_PRICES.items()}
    for model, prices in configured:
        table[model] = _entry(dict(prices), table.get(model))
    return table


def price_table() -> dict[str, dict[str, Decimal]]:
    configured = goldpath_settings.MODEL_PRICES or {}
    key = tuple(sorted((str(m), tuple(sorted((p or {}).items()))) for m, p in configured.items()))
    return _table(key)


def prices_for(model: str) -> dict[str, Decimal]:
    table = price_table()
    if model in table:
        return table[model]
    match = SNAPSHOT.fullmatch(model or "")
    if match and match["alias"] in table:
        return table[match["alias"]]
    return table["default"]


def cost_usd(
    model: str,
    *,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> Decimal:
    """The call's cost in USD, quantized to 6 places."""
    p = prices_for(model)
    micro = (
        input_tokens * p["input"]
        + output_tokens * p["output"]
        + cache_read_tokens * p["cache_read"]
        + cache_write_tokens * p["cache_write"]
    )
    return (micro / MILLION).quantize(SIX_PLACES)
