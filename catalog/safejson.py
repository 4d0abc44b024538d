"""JSON from users, with a nesting limit.

`json.loads` recurses once per level: a body nested a few thousand deep raises RecursionError (a
500), and one nested a few hundred deep parses but breaks whatever walks it next (serializers,
audit masking, the Terraform var-file). Everything a user sends as JSON goes through `loads()`.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


class JSONTooDeep(ValueError):
    """The document nests arrays/objects deeper than allowed."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(f"JSON nested deeper than {max_depth} levels")
        self.max_depth = max_depth


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def depth_of(value: Any, limit: int) -> int:
    """Nesting depth of a parsed document (a scalar is 0), counted without recursion; stops past `limit`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH, strict: bool = True) -> Any:
    """Parse `text`; JSONTooDeep past `max_depth` levels, ValueError for anything else that is not JSON
    (NaN and Infinity too when `strict`)."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant if strict else None)
    except RecursionError:
        raise JSONTooDeep(max_depth) from None
    if depth_of(value, max_depth) > max_depth:
        raise JSONTooDeep(max_depth)
    return value
