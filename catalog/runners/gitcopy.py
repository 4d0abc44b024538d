"""Per-run git copies: clone, diff and commit back without touching the user's checkout.

Git always runs with argv lists (never a shell) and GIT_TERMINAL_PROMPT=0 so a missing
credential fails fast instead of hanging a worker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path


class GitError(RuntimeError):
    """A git command failed (missing repository, unknown ref, conflicting diff...)."""


def _env(author: tuple[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    if author:
        name, email = author
        for role in ("AUTHOR", "COMMITTER"):
            env[f"GIT_{role}_NAME"] = name
            env[f"GIT_{role}_EMAIL"] = email
    return env


def _git(
    args: list[str], cwd: Path | None = None, author: tuple[str, str] | None = None, input_text: str | None = None
) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=_env(author), input=input_text, capture_output=True, text=True)
    if proc.returncode != 0:
        raise GitError(f"git {args[0]} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def prepare_copy(repository: str, base_ref: str, dest: Path) -> str:
    """Clone `repository` into `dest` at `base_ref`; return the base commit sha."""
    dest = Path(dest)
    if not ("://" in repository or repository.startswith("git@")) and not Path(repository).exists():
        raise GitError(f"repository not found: {repository}")
    _git(["clone", "--no-hardlinks", "--quiet", repository, str(dest)])
    try:
        sha = _git(["rev-parse", "--verify", "--quiet", f"{base_ref}^{{commit}}"], cwd=dest).strip()
    except GitError:
        try:
            sha = _git(["rev-parse", "--verify", "--quiet", f"origin/{base_ref}^{{commit}}"], cwd=dest).strip()
        except GitError:
            raise GitError(f"ref not found in {repository}: {base_ref}") from None
    _git(["checkout", "--quiet", "--detach", sha], cwd=dest)
    return sha


def collect_diff(dest: Path, base_sha: str) -> str:
    """Return the copy's changes against base_sha, including new untracked files."""
    _git(["add", "-A"], cwd=Path(dest))
    return _git(["diff", "--cached", "--binary", base_sha], cwd=Path(dest))


def commit_diff(
    repository: str,
    base_sha: str,
    diff: str,
    branch: str,
    message: str,
    trailers: dict[str, str],
    author: tuple[str, str],
) -> tuple[str, str]:
    """Apply `diff` on new `branch` in `repository` via a temp clone; return (commit, tree) shas.

    The user's working tree and current branch are never touched: we commit in a temporary
    clone and push only the new branch back (to the path, or to origin for a URL).
    """
    body = message.rstrip("\n")
    if trailers:
        body += "\n\n" + "\n".join(f"{k}: {v}" for k, v in trailers.items())
    tmp = Path(tempfile.mkdtemp(prefix="goldpath-commit-"))
    try:
        work = tmp / "repo"
        _git(["clone", "--no-hardlinks", "--quiet", "--no-checkout", repository, str(work)])
        _git(["checkout", "--quiet", "-b", branch, base_sha], cwd=work)
        if diff.strip():
            _git(["apply", "--index", "--binary", "-"], cwd=work, input_text=diff)
        _git(["commit", "--quiet", "--allow-empty", "-F", "-"], cwd=work, author=author, input_text=body + "\n")
        commit = _git(["rev-parse", "HEAD"], cwd=work).strip()
        tree = _git(["rev-parse", "HEAD^{tree}"], cwd=work).strip()
        _git(["push", "--quiet", "origin", f"HEAD:refs/heads/{branch}"], cwd=work)
        return commit, tree
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
