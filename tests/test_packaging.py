"""`pip install` of the project ships the pluggable app whole (templates, static files, migrations, golden paths)
and no other top-level package a host could clash with (the standalone host `portal` stays in the repository)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_the_app_and_nothing_else(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("goldpath-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.startswith("goldpath-")}
    assert top == {"catalog"}, top
    for needed in (
        "catalog/templates/goldpath/base.html",
        "catalog/templates/goldpath/page.html",
        "catalog/templates/catalog/tool_list.html",
        "catalog/templates/workspaces/template_detail.html",
        "catalog/static/goldpath/goldpath.css",
        "catalog/static/goldpath/htmx.min.js",
        "catalog/migrations/0001_initial.py",
        "catalog/golden_paths/local-sandbox/main.tf",
        "catalog/celery.py",
        "catalog/conf.py",
    ):
        assert needed in names, needed
    assert not [n for n in names if "/registration/" in n]  # the host's sign-in pages are the host's
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "goldpath = catalog.cli.main:main" in entry_points
