"""Every module of any size in `catalog/` opens with a docstring whose first line states its one idea (issue 17)."""

from __future__ import annotations

import ast
from pathlib import Path

CATALOG = Path(__file__).resolve().parent.parent / "catalog"
MIN_LINES = 30  # smaller modules (most `__init__.py` files among them) may go without
MAX_FIRST_LINE = 110


def _modules() -> list[Path]:
    return sorted(p for p in CATALOG.rglob("*.py") if "migrations" not in p.relative_to(CATALOG).parts)


def test_each_module_over_30_lines_states_its_idea_on_the_docstrings_first_line():
    problems = []
    for path in _modules():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= MIN_LINES:
            continue
        name = path.relative_to(CATALOG.parent)
        doc = ast.get_docstring(ast.parse(text), clean=False)
        if not doc:
            problems.append(f"{name}: no module docstring")
            continue
        first = doc.splitlines()[0].strip()
        if not first.endswith(".") or len(first) > MAX_FIRST_LINE:
            problems.append(f"{name}: first line is not one sentence of at most {MAX_FIRST_LINE} characters: {first!r}")
    assert not problems, "\n".join(problems)


def test_the_walk_sees_the_app():
    names = {str(p.relative_to(CATALOG)) for p in _modules()}
    assert {"policy.py", "services/tools.py", "views/workspaces.py"} <= names
    assert not any(n.startswith("migrations/") for n in names)
