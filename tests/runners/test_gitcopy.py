"""Hardened git on the worker: clone a registered repository, commit and push an accepted diff, and never run
anything a repository says (hooks, fsmonitor, config) while doing it."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from catalog.runners.gitcopy import Git, GitError
from tests.agent_helpers import repo_path


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def source():
    repo = repo_path("gitcopy")
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Dev")
    git(repo, "config", "user.email", "dev@example.com")
    (repo / "README.md").write_text("hello\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "init")
    (repo / "local.txt").write_text("user's uncommitted work\n")  # must survive untouched
    return repo


def _diff(source: Path, tmp_path: Path) -> str:
    clone = tmp_path / "edit"
    git(tmp_path, "clone", "-q", str(source), str(clone))
    (clone / "README.md").write_text("hello\nworld\n")
    (clone / "new.txt").write_text("brand new\n")
    git(clone, "add", "-A")
    return git(clone, "diff", "--cached", "--binary") + "\n"


def test_clone_commit_and_push_a_branch(source, tmp_path):
    with Git(str(source)) as g:
        copy = tmp_path / "copy"
        base = g.prepare_copy("main", copy)
        assert base == git(source, "rev-parse", "HEAD") and (copy / "README.md").read_text() == "hello\n"
        status_before = git(source, "status", "--porcelain")
        commit, tree = g.commit_diff(
            base,
            _diff(source, tmp_path),
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
    assert (
        git(source, "log", "-1", "--format=%an <%ae>|%cn", commit)
        == "Goldpath Agent <agent@goldpath.invalid>|Goldpath Agent"
    )


def test_the_target_repositorys_hooks_and_config_never_run(source, tmp_path):
    """Attack: a registered repository whose hooks and config run commands when Goldpath clones or pushes."""
    marker = Path(f"/tmp/gp-hook-{uuid.uuid4().hex}")
    for hook in ("pre-receive", "post-receive", "update", "reference-transaction", "post-checkout", "pre-commit"):
        path = source / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
        path.chmod(0o755)
    git(source, "config", "core.fsmonitor", f"echo fsmonitor >> {marker}; false")
    git(source, "config", "core.hooksPath", str(source / ".git" / "hooks"))
    git(source, "config", "uploadpack.packObjectsHook", f"echo pack >> {marker}; false")
    with Git(str(source)) as g:
        base = g.prepare_copy("main", tmp_path / "copy")
        g.commit_diff(base, _diff(source, tmp_path), "goldpath/hooks", "x", {}, ("A", "a@b.c"))
    assert git(source, "rev-parse", "--verify", "goldpath/hooks")  # pushed
    assert not marker.exists(), marker.read_text()


def test_a_ref_never_becomes_an_option(source, tmp_path):
    marker = Path(f"/tmp/gp-opt-{uuid.uuid4().hex}")
    with Git(str(source)) as g:
        for ref in ("--orphan=x", f"--upload-pack=touch {marker}", "-h"):
            with pytest.raises(GitError) as err:
                g.prepare_copy(ref, tmp_path / f"copy-{uuid.uuid4().hex[:6]}")
            assert err.value.code == "ref_not_found"
    assert not marker.exists()


@pytest.mark.parametrize(
    "url",
    ["file:///etc", "http://127.0.0.1:6379/x", "ssh://git@127.0.0.1:5432/x", "https://10.0.0.1/x.git", "/etc"],
)
def test_addresses_outside_the_rules_are_refused_before_git_runs(url, tmp_path):
    with Git(url) as g, pytest.raises(GitError) as err:
        g.prepare_copy("main", tmp_path / "copy")
    assert err.value.code == "refused"
    assert not (tmp_path / "copy").exists()


def test_git_text_never_reaches_the_message(source, tmp_path):
    with Git(str(source)) as g, pytest.raises(GitError) as err:
        g.prepare_copy("no-such-branch", tmp_path / "copy")
    assert err.value.message == "The base ref does not exist in the repository."
    assert str(source) not in str(err.value)


def test_git_connects_only_to_the_address_that_was_checked(monkeypatch, tmp_path):
    """DNS rebinding: the name is checked (public), then git would resolve it again (127.0.0.1). Git is told the
    checked address (curl's resolve list), so a second DNS answer never reaches it."""
    import socket
    import threading

    from catalog import repository_urls

    def public_answer(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.4.4", port))]

    monkeypatch.setattr(repository_urls.socket, "getaddrinfo", public_answer)
    url = "https://git.example.com/acme/app.git"
    with Git(url) as g:
        g.check_address()
        env = g._env()
    pairs = {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))}
    assert pairs["http.curloptResolve"] == "git.example.com:443:8.8.4.4"

    # and this git honours it: a name that resolves nowhere is reached at the pinned address (a local listener)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: list[str] = []

    def accept() -> None:
        listener.settimeout(10)
        try:
            conn, _ = listener.accept()
            seen.append("connected")
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    proc = subprocess.run(
        [
            "git",
            "-c",
            f"http.curloptResolve=gp-pinned.invalid:{port}:127.0.0.1",
            "ls-remote",
            f"https://gp-pinned.invalid:{port}/x.git",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "GIT_TERMINAL_PROMPT": "0"},
    )
    thread.join()
    listener.close()
    assert proc.returncode != 0 and seen == ["connected"], proc.stderr
