"""Apply a run's diff into the workspace its group started from (the worker's side of `apply`).

All or nothing: the merge is made in a clone of ours, never in the checkout. The clone gets the group's start
(base commit + snapshot, so git has every preimage a three-way merge needs), then the checkout as it is now
(copied out by catalog.agents.workspace_tree), committed; `git apply --3way` lays the run's diff on that. Any
conflict: the conflicting paths are reported and the checkout is left exactly as it was (no conflict markers in
the developer's files). Clean: only the paths the merge changed are written back, each only if the checkout
still holds what was copied (an edit made meanwhile aborts the whole apply, nothing written). No git, hook,
filter or fsmonitor of the checkout ever runs, on the host or elsewhere: git runs in our clone, with our config.

The result lands as unstaged changes: the developer's index and commits are untouched.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

from ..models.agents import AgentApply, ApplyStatus
from ..runners.gitcopy import Git, GitError
from ..services.agent_workspace import agent_group_apply_done
from . import workspace_tree as tree
from .workspace_snapshot import AUTHOR, commit_snapshot, lay_over

log = logging.getLogger(__name__)


class ApplyError(RuntimeError):
    """The apply cannot be made now; the message is for the user."""


def patch_paths(diff: str) -> list[str]:
    """The paths a git diff touches (its `diff --git a/X b/Y` headers, b side)."""
    found = []
    for line in diff.splitlines():
        if line.startswith("diff --git a/") and " b/" in line:
            found.append(line.split(" b/", 1)[1])
    return sorted(set(found))


def _clear(work: Path) -> None:
    """Remove our clone's checked-out files (links themselves, never their targets), keeping its .git."""
    for entry in work.iterdir():
        if entry.name == ".git":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _changes(git: Git, work: Path) -> list[tree.Change]:
    """What the merge changed against the checkout's commit (HEAD of our clone), read from our own files."""
    raw = git.run(["diff", "--cached", "--raw", "-z", "--no-renames", "HEAD"], cwd=work)
    tokens = raw.split("\0")
    changes = []
    for meta, path in zip(tokens[0::2], tokens[1::2], strict=False):
        if not meta.startswith(":"):
            continue
        _old_mode, new_mode, _old, _new, status = meta[1:].split(" ", 4)
        if status.startswith("D"):
            changes.append(tree.Change(path=path, kind="d"))
            continue
        target = work / path
        info = os.lstat(target)
        if stat.S_ISLNK(info.st_mode):
            changes.append(tree.Change(path=path, kind="l", data=os.fsencode(os.readlink(target))))
        else:
            changes.append(tree.Change(path=path, kind="f", data=target.read_bytes(), executable=new_mode == "100755"))
    return changes


def merge_into_workspace(group, run, workspace_id) -> tuple[list[str], list[str]]:
    """(files written, conflicting paths); raises ApplyError / TreeError / GitError when it cannot be tried."""
    top = tree.checkout_path(workspace_id)
    if not tree.has_checkout(top):
        raise ApplyError("The workspace's checkout is gone; nothing was applied.")
    if not group.workspace_snapshot_sha256:
        raise ApplyError("The group has no snapshot of the workspace (no run started); nothing was applied.")
    with (
        Git(group.repository_url, group.repository.credential()) as git,
        tempfile.TemporaryDirectory(prefix="goldpath-apply-") as tmp,
    ):
        work = Path(tmp) / "work"
        git.prepare_copy(group.base_commit, work)
        start = commit_snapshot(git, work, group.workspace_snapshot, "start of the runs")
        _clear(work)
        manifest = lay_over(git, work, top, start)
        git.run(["commit", "-q", "--no-verify", "--allow-empty", "-m", "the checkout now"], cwd=work, author=AUTHOR)
        try:
            git.run(["apply", "--3way", "--binary", "-"], cwd=work, input_text=run.diff, code="apply_failed")
        except GitError as exc:
            log.info("apply of run %s into workspace %s did not merge: %s", run.pk, workspace_id, exc.detail[:2000])
            unmerged = git.run(["diff", "--name-only", "--diff-filter=U", "-z"], cwd=work)
            return [], sorted({p for p in unmerged.split("\0") if p}) or patch_paths(run.diff)
        git.run(["add", "-A", "--", "."], cwd=work)
        changes = _changes(git, work)
        tree.write_back(top, changes, manifest)
    return [c.path for c in changes], []


def apply_run(apply_id: int) -> str:
    """Do one pending apply and record how it went (idempotent: an apply no longer pending is left alone)."""

    row = (
        AgentApply.objects.select_related("group__repository", "run", "workspace")
        .filter(pk=apply_id, status=ApplyStatus.PENDING)
        .first()
    )
    if row is None:
        return "skipped"
    files: list[str] = []
    conflicts: list[str] = []
    error = ""
    try:
        if row.workspace.status not in ("running", "stopped"):
            raise ApplyError(f"The workspace is {row.workspace.status}; apply into a running or stopped workspace.")
        files, conflicts = merge_into_workspace(row.group, row.run, row.workspace_id)
    except (ApplyError, tree.TreeError) as exc:
        error = str(exc)
    except GitError as exc:
        error = f"{exc.message} (git: {exc.code})"
    except Exception as exc:  # noqa: BLE001 - the apply ends `failed` with the reason, the checkout untouched
        log.exception("apply %s failed", apply_id)
        error = f"{type(exc).__name__}: {exc}"[:500]
    status = ApplyStatus.FAILED if error else (ApplyStatus.CONFLICT if conflicts else ApplyStatus.APPLIED)
    agent_group_apply_done(apply_id=row.pk, status=status, files=files, conflicts=conflicts, error=error)
    return status
