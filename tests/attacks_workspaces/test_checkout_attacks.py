"""Attacks on "Run agents here" / "Apply into workspace" by a hostile checkout (catalog.agents.workspace_tree):
the worker reads the developer's files; their size must not become the worker's memory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

FILE_MB, LIMIT_MB = 400, 700

PROBE = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from catalog.agents import workspace_tree as tree
    resource.setrlimit(resource.RLIMIT_AS, ({limit} << 20, {limit} << 20))
    src, dest = Path(sys.argv[1]), Path(sys.argv[2])
    manifest = tree.copy_out(src, dest)
    assert manifest.bytes == {size} << 20 and (dest / "big.bin").stat().st_size == {size} << 20
    assert tree._current(tree.os.open(src, tree._DIR), "big.bin") == manifest.entries["big.bin"]
    print("ok")
    """
)


def test_a_huge_sparse_file_in_the_checkout_is_copied_in_bounded_memory(tmp_path):
    """A workspace process makes `big.bin` a sparse file (`truncate -s`; free for it). Copying the checkout out
    (snapshot) and checking it again (apply) read it; before the fix each held it in memory whole (twice: the
    chunks and their join), so a worker with a memory limit died (MemoryError) on a file far below MAX_BYTES."""
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    dest.mkdir()
    with open(src / "big.bin", "wb") as fh:
        fh.truncate(FILE_MB << 20)
    probe = PROBE.format(limit=LIMIT_MB, size=FILE_MB)
    result = subprocess.run(
        [sys.executable, "-c", probe, str(src), str(dest)], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
