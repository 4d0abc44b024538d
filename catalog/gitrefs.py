"""Git ref names from users: a branch, tag or commit sha, never something git could read as an option.

`ref_error()` applies git's check-ref-format rules (one-level names allowed, as for a branch `main`)
and refuses a leading '-': `--orphan=x` given as a ref would otherwise reach `git checkout` as an
option. A hexadecimal commit sha is a valid name by these rules.
"""

from __future__ import annotations

import re

MAX_LENGTH = 255
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
HINT = "Give a branch, tag or commit sha: a valid git ref name (git check-ref-format), not starting with '-'."


def ref_error(value: object) -> str | None:
    """Why `value` is not a usable ref name, or None when it is."""
    if not isinstance(value, str):
        return "Must be a string. " + HINT
    if not value:
        return "Give a branch, tag or commit sha."
    if len(value) > MAX_LENGTH:
        return f"At most {MAX_LENGTH} characters."
    if value.startswith("-"):
        return "Must not start with '-'. " + HINT
    if (
        _FORBIDDEN.search(value)
        or ".." in value
        or "@{" in value
        or value == "@"
        or value.startswith("/")
        or value.endswith(("/", "."))
        or "//" in value
        or any(part.startswith(".") or part.endswith(".lock") for part in value.split("/"))
    ):
        return HINT
    return None


def is_valid_ref(value: object) -> bool:
    return ref_error(value) is None
