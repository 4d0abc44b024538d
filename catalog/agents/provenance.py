"""Provenance: commit an accepted run's diff with trailers, sign an in-toto-style statement, verify, look up.

The statement (canonical JSON: sorted keys, no spaces) is signed with the portal's Ed25519 key:

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "<repository>@<branch>", "digest": {"gitCommit": sha, "gitTree": tree}}],
     "predicateType": "https://goldpath.dev/provenance/agent-run/v1",
     "predicate": {prompt sha256, requester, team, agent identity, tool and version, template version,
                   sandbox policy hash, base commit, diff sha256, timings}}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.utils import timezone

from ..models import AgentGroup, AgentRun, ProvenanceRecord
from . import crypto

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://goldpath.dev/provenance/agent-run/v1"
TRAILERS = (
    "Goldpath-Run",
    "Goldpath-Prompt-SHA256",
    "Goldpath-Agent",
    "Goldpath-Tool-Version",
    "Goldpath-Requested-By",
)


def canonical(statement: dict[str, Any]) -> bytes:
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _git(repo: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=60, env=env, check=check)


def branch_name(group: AgentGroup, run: AgentRun) -> str:
    return f"goldpath/{group.pk}/{run.pk}"


def trailers_for(group: AgentGroup, run: AgentRun) -> dict[str, str]:
    return {
        "Goldpath-Run": str(run.pk),
        "Goldpath-Prompt-SHA256": group.prompt_sha256,
        "Goldpath-Agent": run.principal,
        "Goldpath-Tool-Version": f"{run.tool.slug}@{run.tool_version.version}",
        "Goldpath-Requested-By": group.requester.username,
    }


def commit_message(group: AgentGroup, run: AgentRun) -> str:
    """Title and body; the trailers are appended by gitcopy.commit_diff."""
    first = " ".join(group.prompt.split())
    title = first if len(first) <= 60 else first[:57] + "..."
    return f"{title}\n\nAgent result accepted from run {run.pk} (group {group.pk}, {run.tool.slug} #{run.index}).\n"


def build_statement(group: AgentGroup, run: AgentRun, *, commit: str, tree: str, branch: str) -> dict[str, Any]:
    def iso(value):
        return value.isoformat() if value else None

    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f"{group.repository}@{branch}", "digest": {"gitCommit": commit, "gitTree": tree}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "prompt": {"sha256": group.prompt_sha256},
            "requester": group.requester.username,
            "team": group.team.slug,
            "agent": {"identity": run.principal, "group": group.pk, "run": run.pk, "index": run.index},
            "tool": {"slug": run.tool.slug, "version": run.tool_version.version},
            "template_version": None,
            "repository": group.repository,
            "base_commit": group.base_commit,
            "branch": branch,
            "diff_sha256": hashlib.sha256(run.diff.encode()).hexdigest(),
            "sandbox": {
                "policy_hash": run.sandbox.get("policy_hash", ""),
                "network_policy": group.network_policy,
                "limits_applied": run.sandbox.get("limits_applied", run.sandbox.get("limits", {})),
            },
            "decision": group.decisions.get(run.tool.slug, {}),
            "timings": {
                "requested_at": iso(group.created_at),
                "started_at": iso(run.started_at),
                "finished_at": iso(run.finished_at),
                "accepted_at": timezone.now().isoformat(),
            },
            "portal_key_id": crypto.key_id(),
        },
    }


def _commit(group: AgentGroup, run: AgentRun, branch: str) -> tuple[str, str]:
    """Commit the run's diff onto a new branch from the base commit, never touching the user's checkout."""
    from ..runners import gitcopy

    requester = group.requester
    return gitcopy.commit_diff(
        group.repository,
        run.sandbox.get("base_commit") or group.base_commit or group.base_ref,
        run.diff,
        branch,
        commit_message(group, run),
        trailers_for(group, run),
        (requester.get_full_name() or requester.username, requester.email or f"{requester.username}@goldpath.invalid"),
    )


def commit_and_sign(*, group_id: int, actor: Any) -> ProvenanceRecord | None:
    """Make the commit and the signed record; the group's accept status says how it went."""
    from ..services.agents import agent_group_accept_done

    group = AgentGroup.objects.select_related("requester", "team").get(pk=group_id)
    run = AgentRun.objects.select_related("tool", "tool_version").get(pk=group.accepted_run_id)
    branch = branch_name(group, run)
    try:
        commit, tree = _commit(group, run, branch)
    except Exception as exc:  # noqa: BLE001 - reported on the group, never a 500
        agent_group_accept_done(group_id=group.pk, error=str(exc)[:2000], actor=actor)
        return None
    statement = build_statement(group, run, commit=commit, tree=tree, branch=branch)
    record = ProvenanceRecord.objects.create(
        group=group,
        run=run,
        team=group.team,
        repository=group.repository,
        branch=branch,
        commit_sha=commit,
        tree_sha=tree,
        statement=statement,
        signature=crypto.sign(canonical(statement)),
        key_id=crypto.key_id(),
    )
    agent_group_accept_done(group_id=group.pk, commit=commit, branch=branch, actor=actor)
    return record


# --- verification and lookup -------------------------------------------------------------------


@dataclass
class Verification:
    ok: bool
    problems: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


def _trailers_of(repo: str, commit: str) -> dict[str, str]:
    message = _git(repo, "log", "-1", "--format=%B", commit).stdout
    found = {}
    for line in message.splitlines():
        m = re.match(r"^(Goldpath-[\w-]+):\s*(.*)$", line.strip())
        if m:
            found[m.group(1)] = m.group(2)
    return found


@contextlib.contextmanager
def local_view(repository: str):
    """A path git can read: the repository itself, or a temporary bare clone of a remote URL."""
    from ..services.agents import is_remote

    if not is_remote(repository):
        yield repository
        return
    from django.conf import settings

    base = Path(settings.GOLDPATH_HOME) / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="provenance-", dir=base)
    try:
        _git(tmp, "clone", "--bare", "--quiet", "--", repository, f"{tmp}/repo.git")
        yield f"{tmp}/repo.git"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def verify_record(record: ProvenanceRecord) -> Verification:
    """Signature over the stored statement, then the repository: commit, tree, trailers, branch."""
    try:
        with local_view(record.repository) as repo:
            return _verify(record, repo)
    except subprocess.SubprocessError as exc:
        return Verification(ok=False, problems=[f"the repository {record.repository} cannot be read: {exc}"])


def _verify(record: ProvenanceRecord, repo: str) -> Verification:
    v = Verification(ok=True)
    statement = record.statement
    if record.key_id != crypto.key_id():
        v.problems.append(f"signed with key {record.key_id[:16]}..., not the portal's key {crypto.key_id()[:16]}...")
    elif not crypto.verify(canonical(statement), record.signature):
        v.problems.append("the signature does not match the statement (the record was altered)")
    else:
        v.checks.append(f"signature valid (Ed25519, key {record.key_id[:16]}...)")
    try:
        digest = statement["subject"][0]["digest"]
        predicate = statement["predicate"]
    except (KeyError, IndexError, TypeError):
        v.problems.append("the statement has no subject digest")
        v.ok = False
        return v
    if digest.get("gitCommit") != record.commit_sha:
        v.problems.append("the statement names another commit than the record")
    exists = _git(repo, "cat-file", "-e", f"{record.commit_sha}^{{commit}}", check=False)
    if exists.returncode != 0:
        v.problems.append(f"commit {record.commit_sha[:12]} no longer exists in {repo}")
        v.ok = False
        return v
    tree = _git(repo, "rev-parse", f"{record.commit_sha}^{{tree}}").stdout.strip()
    if tree != digest.get("gitTree"):
        v.problems.append(
            f"the commit's tree {tree[:12]} differs from the signed tree {str(digest.get('gitTree'))[:12]}"
        )
    else:
        v.checks.append(f"commit {record.commit_sha[:12]} has the signed tree {tree[:12]}")
    trailers = _trailers_of(repo, record.commit_sha)
    expected = {
        "Goldpath-Run": str(predicate.get("agent", {}).get("run")),
        "Goldpath-Prompt-SHA256": predicate.get("prompt", {}).get("sha256"),
        "Goldpath-Agent": predicate.get("agent", {}).get("identity"),
        "Goldpath-Tool-Version": f"{predicate.get('tool', {}).get('slug')}@{predicate.get('tool', {}).get('version')}",
        "Goldpath-Requested-By": predicate.get("requester"),
    }
    bad = [k for k, val in expected.items() if trailers.get(k) != val]
    if bad:
        v.problems.append("commit trailers differ from the statement: " + ", ".join(bad))
    else:
        v.checks.append("commit trailers match the statement")
    head = _git(repo, "rev-parse", "--verify", "-q", f"refs/heads/{record.branch}", check=False).stdout.strip()
    if not head:
        v.problems.append(f"branch {record.branch} no longer exists")
    elif _git(repo, "merge-base", "--is-ancestor", record.commit_sha, head, check=False).returncode != 0:
        v.problems.append(f"branch {record.branch} was rewritten: it no longer contains {record.commit_sha[:12]}")
    else:
        v.checks.append(f"branch {record.branch} contains the commit")
    v.ok = not v.problems
    return v


def commit_for_line(repository: str, path: str, line: int, ref: str = "HEAD") -> str:
    """`git blame` one line: the commit that last changed it (remote repositories through a bare clone)."""
    with local_view(repository) as repo:
        out = _git(repo, "blame", "--porcelain", "-L", f"{line},{line}", ref, "--", path).stdout
    return out.split(" ", 1)[0].strip()


def resolve_commit(repository: str, commit: str) -> str:
    return _git(repository, "rev-parse", "--verify", f"{commit}^{{commit}}").stdout.strip()
