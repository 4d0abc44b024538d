"""gitcopy: per-run clone, diff with untracked files, commit to a branch with trailers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from catalog.runners.gitcopy import GitError, collect_diff, commit_diff, prepare_copy


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def source(tmp_path):
    repo = tmp_path / "src"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Dev")
    git(repo, "config", "user.email", "dev@example.com")
    (repo / "README.md").write_text("hello\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "init")
    (repo / "local.txt").write_text("user's uncommitted work\n")  # must survive untouched
    return repo


def test_clone_diff_commit_roundtrip(source, tmp_path):
    copy = tmp_path / "copy"
    base = prepare_copy(str(source), "main", copy)
    assert base == git(source, "rev-parse", "HEAD")
    (copy / "README.md").write_text("hello\nworld\n")
    (copy / "new.txt").write_text("brand new\n")
    diff = collect_diff(copy, base)
    assert "new.txt" in diff and "+world" in diff
    status_before = git(source, "status", "--porcelain")
    commit, tree = commit_diff(
        str(source),
        base,
        diff,
        "goldpath/run-1",
        "Agent change",
        {"Goldpath-Run": "42", "Goldpath-Prompt-Sha256": "abc"},
        ("Goldpath Agent", "agent@goldpath.invalid"),
    )
    assert git(source, "rev-parse", "goldpath/run-1") == commit
    assert git(source, "rev-parse", "goldpath/run-1^{tree}") == tree
    assert git(source, "branch", "--show-current") == "main"
    assert git(source, "status", "--porcelain") == status_before
    assert (source / "README.md").read_text() == "hello\n"
    msg = git(source, "log", "-1", "--format=%B", commit)
    assert msg.startswith("Agent change") and "Goldpath-Run: 42" in msg
    assert git(source, "log", "-1", "--format=%(trailers:key=Goldpath-Run,valueonly)", commit) == "42"
    assert (
        git(source, "log", "-1", "--format=%an <%ae>|%cn", commit)
        == "Goldpath Agent <agent@goldpath.invalid>|Goldpath Agent"
    )
    assert git(source, "show", f"{commit}:new.txt") == "brand new"


def test_missing_repo_and_ref(source, tmp_path):
    with pytest.raises(GitError, match="repository not found"):
        prepare_copy(str(tmp_path / "nope"), "main", tmp_path / "c1")
    with pytest.raises(GitError, match="ref not found"):
        prepare_copy(str(source), "no-such-branch", tmp_path / "c2")
