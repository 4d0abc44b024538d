"""Shared setup for repository tests: a fresh GOLDPATH_HOME whose repositories folder is the only place local
repositories may be registered, and empty git repositories to register."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_init(path: Path, *, bare: bool = False) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", *(["--bare"] if bare else []), str(path)], check=True)
    return path


def fresh_home(settings, tmp_path: Path, monkeypatch) -> Path:
    """A fresh GOLDPATH_HOME with its repositories folder; no extra roots or allowed hosts (from settings or the
    environment). Call it from a `home` fixture."""
    monkeypatch.delenv("GOLDPATH_LOCAL_REPOSITORY_ROOTS", raising=False)
    monkeypatch.delenv("GOLDPATH_ALLOWED_GIT_HOSTS", raising=False)
    settings.GOLDPATH = {**settings.GOLDPATH, "HOME": tmp_path / "home"}
    (tmp_path / "home" / "repositories").mkdir(parents=True)
    settings.GOLDPATH = {**settings.GOLDPATH, "LOCAL_REPOSITORY_ROOTS": "", "ALLOWED_GIT_HOSTS": ""}
    return tmp_path / "home"
