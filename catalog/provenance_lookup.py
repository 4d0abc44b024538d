"""The provenance lookup: by commit, or by repository + path + line (+ ref) through git blame.

One selector for the provenance page and `GET /api/v1/provenance/`. Only records the caller may read are found,
and only repositories the caller has records for are blamed (no probing of other repositories).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import selectors
from .agents import provenance as prov
from .numbers import small_int
from .services.errors import InvalidInput

QUERY_FIELDS = ("commit", "repository", "path", "line", "ref")
HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True)
class ProvenanceMatch:
    record: Any  # ProvenanceRecord
    blame: dict[str, Any] | None  # the line looked up, when the lookup went through git blame


def asked(params: Mapping[str, Any]) -> bool:
    """Whether the query names anything to look up (a page shows its empty form otherwise)."""
    return any(str(params.get(name) or "").strip() for name in QUERY_FIELDS if name != "ref")


def lookup(user: Any, params: Mapping[str, Any]) -> ProvenanceMatch | None:
    """The one record the query names, or None when the caller may read none (404). Raises InvalidInput with
    field errors for a bad query (400)."""
    visible = selectors.visible_provenance(user)
    commit = str(params.get("commit") or "").strip()
    blame = None
    if not commit:
        path, line = str(params.get("path") or ""), str(params.get("line") or "")
        ref = str(params.get("ref") or "").strip() or "HEAD"
        commit = prov.blame_lookup(visible, str(params.get("repository") or "").strip(), path, line, ref)
        if commit is None:
            return None
        blame = {"path": path, "line": small_int(line), "ref": ref, "commit": commit}
    if not (4 <= len(commit) <= 64) or not set(commit) <= HEX:
        raise InvalidInput("Give a commit hash.", errors={"commit": ["Give a hexadecimal commit hash (4 to 64)."]})
    matches = list(visible.filter(commit_sha__startswith=commit.lower())[:2])
    if len(matches) != 1:
        return None
    return ProvenanceMatch(record=matches[0], blame=blame)
