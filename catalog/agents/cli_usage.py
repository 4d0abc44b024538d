"""The usage an agent CLI reports about itself, read from its captured stdout/stderr text.

The gateway's own metering is the record; this is the CLI's claim, kept next to it for comparison.
The text comes from inside a sandbox, so it is hostile: malformed lines are skipped, numbers are
checked and capped, and nothing here raises.

Formats (a tool version names one):
- ``claude-stream-json``: Claude Code ``--output-format stream-json``; the last ``result`` event's
  ``usage`` and ``total_cost_usd`` (both cover the whole run).
- ``codex-json``: Codex ``exec --json``; the sum of the ``turn.completed`` events' ``usage``.
- ``aider-text``: Aider's "Tokens: 2.6k sent, 44 received. Cost: $0.0056 message, $0.0056 session."
  lines, one per model call: tokens summed, cost the last session figure.
- ``none``: nothing.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

USAGE_FORMATS = ("claude-stream-json", "codex-json", "aider-text", "none")
MAX_TOKENS = 10**12
MAX_COST = Decimal(10**6)
MAX_LINE = 1024 * 1024  # longer lines are not a usage line worth parsing
_CENT_MILLIONTH = Decimal("0.000001")


def _count(value) -> int | None:
    """A token count the CLI printed, or None when it is not a plausible one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or value < 0:  # NaN or negative
        return None
    return int(min(value, MAX_TOKENS))


def _cost(value) -> str | None:
    """A USD amount as a decimal string with 6 places, or None when it is not a plausible one."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not amount.is_finite() or amount < 0:
        return None
    return str(min(amount, MAX_COST).quantize(_CENT_MILLIONTH, rounding=ROUND_HALF_UP))


def _json_lines(output: str):
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith("{") or len(line) > MAX_LINE:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            yield event


def _claude(output: str) -> dict:
    result = None
    for event in _json_lines(output):
        if event.get("type") == "result" and isinstance(event.get("usage"), dict):
            result = event
    if result is None:
        return {}
    usage = result["usage"]
    found = {
        "input_tokens": _count(usage.get("input_tokens")),
        "output_tokens": _count(usage.get("output_tokens")),
        "cache_read_tokens": _count(usage.get("cache_read_input_tokens")),
        "cache_write_tokens": _count(usage.get("cache_creation_input_tokens")),
        "cost_usd": _cost(result.get("total_cost_usd")),
    }
    return {key: value for key, value in found.items() if value is not None}


_CODEX_FIELDS = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cached_input_tokens": "cache_read_tokens",
    "cache_write_input_tokens": "cache_write_tokens",
    "reasoning_output_tokens": "reasoning_tokens",
}


def _codex(output: str) -> dict:
    totals: dict[str, int] = {}
    for event in _json_lines(output):
        usage = event.get("usage")
        if event.get("type") != "turn.completed" or not isinstance(usage, dict):
            continue
        for source, key in _CODEX_FIELDS.items():
            count = _count(usage.get(source))
            if count is not None:
                totals[key] = min(totals.get(key, 0) + count, MAX_TOKENS)
    return totals


_NUMBER = r"(\d{1,15}(?:\.\d{1,6})?)([kKmM]?)"
_AIDER_TOKENS = re.compile(
    rf"Tokens: {_NUMBER} sent(?:, {_NUMBER} cache write)?(?:, {_NUMBER} cache hit)?, {_NUMBER} received\."
)
_AIDER_COST = re.compile(r"Cost: \$(\d{1,12}(?:\.\d{1,12})?) message, \$(\d{1,12}(?:\.\d{1,12})?) session\.")
_SUFFIX = {"": 1, "k": 1_000, "m": 1_000_000}


def _scaled(number: str | None, suffix: str | None) -> int:
    if not number:
        return 0
    return _count(float(number) * _SUFFIX[(suffix or "").lower()]) or 0


def _aider(output: str) -> dict:
    totals: dict[str, int] = {}
    cost = None
    for line in output.splitlines():
        if len(line) > MAX_LINE:
            continue
        for match in _AIDER_TOKENS.finditer(line):
            sent, written, hit, received = (_scaled(*match.group(i, i + 1)) for i in (1, 3, 5, 7))
            for key, count in (
                ("input_tokens", sent),
                ("output_tokens", received),
                ("cache_write_tokens", written),
                ("cache_read_tokens", hit),
            ):
                if count or key in ("input_tokens", "output_tokens"):
                    totals[key] = min(totals.get(key, 0) + count, MAX_TOKENS)
        for match in _AIDER_COST.finditer(line):
            cost = _cost(match.group(2)) or cost
    if cost is not None and totals:
        totals["cost_usd"] = cost
    return totals


_PARSERS = {"claude-stream-json": _claude, "codex-json": _codex, "aider-text": _aider}


def parse_usage(usage_format: str, output: str) -> dict:
    """The CLI's own usage figures: input/output (and cache) tokens, ``cost_usd`` as a string if printed."""
    parser = _PARSERS.get(usage_format)
    if parser is None or not isinstance(output, str):
        return {}
    try:
        return parser(output)
    except Exception:  # hostile output must never break a run's bookkeeping
        return {}
