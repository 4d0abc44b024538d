"""Whether a requested model is one a tool version allows: its exact name, a dated snapshot of it, or a glob."""

from __future__ import annotations

import fnmatch

from .pricing import SNAPSHOT


def model_allowed(model: str, names: list[str]) -> bool:
    """True when `model` is one of `names`, a dated snapshot (`<alias>-YYYYMMDD`) of one, or matches a glob."""
    snapshot = SNAPSHOT.fullmatch(model)
    alias = snapshot["alias"] if snapshot else None
    for name in names:
        name = str(name)
        if name == model or name == alias or ("*" in name and fnmatch.fnmatchcase(model, name)):
            return True
    return False
