"""A group's runs start from its workspace's current checkout, uncommitted changes included.

The first run's worker takes the snapshot once for the whole group: the checkout's files are copied out by
catalog.agents.workspace_tree (no git runs in the checkout), laid over a fresh clone of ours of the registered
repository at the checkout's HEAD, and `git diff` in that clone (our config only: no hook, filter or fsmonitor of
the developer's) gives the uncommitted changes, kept on the group. Every run then clones the base commit, applies
the snapshot and commits it ("workspace snapshot"): the agent sees the developer's change, and its own diff is
computed against that commit, so it holds the agent's work only. Ignored files (.env, node_modules) are not
part of the snapshot: they never leave the workspace.

When HEAD is a commit the registered repository does not have (a local commit), the base is the group's ref
and the snapshot holds the local commits' changes too: the run's tree is the checkout's either way.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..models import AgentGroup
from ..runners.gitcopy import Git, GitError
from ..services.agent_workspace import agent_group_snapshot_taken
from . import workspace_tree as tree

SNAPSHOT_MAX_BYTES = 20 << 20
AUTHOR = ("Goldpath", "goldpath@goldpath.invalid")


def _git_text(git: Git, args: list[str], cwd: Path, **kw) -> str:
    """Git.run, with undecodable output (non-UTF-8 text files) refused clearly instead of crashing."""
    try:
        return git.run(args, cwd=cwd, **kw)
    except UnicodeError:
        raise tree.TreeError("The workspace's changes include text that is not UTF-8; they cannot be copied.") from None


def lay_over(git: Git, work: Path, top: Path, base: str) -> tree.Manifest:
    """Make `work` (a clone of ours, nothing checked out) hold the checkout's files on an index of `base`."""
    manifest = tree.copy_out(top, work)
    git.run(["reset", "-q", base], cwd=work)
    _git_text(git, ["add", "-A", "--", "."], cwd=work)
    return manifest


def take_snapshot(group: AgentGroup) -> tuple[str, str, list[str]]:
    """(base commit, the checkout's changes against it as a binary diff, the changed paths)."""
    top = tree.checkout_path(group.workspace_id)
    if not tree.has_checkout(top):
        raise tree.TreeError("The workspace's checkout is gone; start the workspace again.")
    head = tree.read_head(top)
    with (
        Git(group.repository_url, group.repository.credential()) as git,
        tempfile.TemporaryDirectory(prefix="goldpath-snapshot-") as tmp,
    ):
        work = Path(tmp) / "work"
        git.clone(work, checkout=False)
        base = None
        if head:
            try:
                base = git.resolve(work, head)
            except GitError:
                base = None
        base = base or git.resolve(work, group.base_ref)
        lay_over(git, work, top, base)
        diff = _git_text(
            git, ["diff", "--cached", "--binary", "--no-ext-diff", "--no-textconv", "--no-renames", base], cwd=work
        )
        names = _git_text(git, ["diff", "--cached", "--name-only", "-z", "--no-renames", base], cwd=work)
    if len(diff.encode()) > SNAPSHOT_MAX_BYTES:
        raise tree.TreeError(f"The workspace's uncommitted changes are larger than {SNAPSHOT_MAX_BYTES >> 20} MB.")
    return base, diff, [n for n in names.split("\0") if n]


def ensure_snapshot(group_id: int, *, say=lambda text: None) -> AgentGroup:
    """The group with its snapshot: taken now unless a run of the group already took it (first one wins)."""
    group = AgentGroup.objects.select_related("repository").get(pk=group_id)
    if group.workspace_snapshot_sha256:
        return group
    say("taking a snapshot of the workspace's checkout (uncommitted changes included)")
    base, diff, files = take_snapshot(group)
    agent_group_snapshot_taken(group_id=group.pk, base_commit=base, snapshot=diff, files=files)
    return AgentGroup.objects.select_related("repository").get(pk=group_id)


def commit_snapshot(git: Git, copy: Path, snapshot: str, message: str) -> str:
    """Apply the snapshot in a copy of ours checked out at its base and commit it; returns the new HEAD."""
    if snapshot.strip():
        git.run(["apply", "--index", "--binary", "-"], cwd=copy, input_text=snapshot, code="apply_failed")
    git.run(["commit", "-q", "--no-verify", "--allow-empty", "-m", message], cwd=copy, author=AUTHOR)
    return git.run(["rev-parse", "HEAD"], cwd=copy).strip()


def prepare_run_copy(group: AgentGroup, git: Git, copy: Path, *, say=lambda text: None) -> tuple[str, str]:
    """The run's copy: the base commit plus the workspace snapshot, committed. Returns (base, start) commits:
    the run's diff is taken against `start` (the agent's work only); accepting commits onto `base`."""
    group = ensure_snapshot(group.pk, say=say)
    base = git.prepare_copy(group.base_commit, copy)
    files = group.workspace_snapshot.count("\ndiff --git ") + group.workspace_snapshot.startswith("diff --git ")
    say(f"starting from workspace {group.workspace_id}'s checkout at {base[:12]} with {files} changed file(s)")
    start = commit_snapshot(git, copy, group.workspace_snapshot, f"Workspace snapshot (agent group {group.pk})")
    return base, start
