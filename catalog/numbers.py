"""Numbers from user text: ASCII digits only, and few of them.

`str.isdigit()` is true for "²" and other Unicode digits that `int()` refuses, and `int()` refuses more than
4300 digits: both were 500s. Every place that reads a count, a line, an id or a port from a request uses this.
"""

from __future__ import annotations

import re

DIGITS = re.compile(r"[0-9]{1,9}")


def small_int(value: object, *, max_digits: int = 9) -> int | None:
    """The non-negative integer `value` spells in at most `max_digits` ASCII digits, else None."""
    text = value if isinstance(value, str) else str(value) if isinstance(value, int) else ""
    if len(text) > max_digits or not DIGITS.fullmatch(text):
        return None
    return int(text)
