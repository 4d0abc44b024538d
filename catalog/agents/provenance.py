"""Provenance: commit an accepted run's diff with trailers, sign an in-toto-style statement, verify, look up.

The statement (canonical JSON: sorted keys, no spaces) is signed with the portal's Ed25519 key:

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "<repository>@<branch>", "digest": {"gitCommit": sha, "gitTree": tree}}],
     "predicateType": "https://goldpath.dev/provenance/agent-run/v1",
     "predicate": {prompt sha256, requester, team, agent identity, tool and version, template version,
                   sandbox policy hash, base commit, diff sha256, timings,
                   models, usage {model_calls, input_tokens, output_tokens, cost_usd}, transcript_sha256}}

`transcript_sha256` is the model gateway's digest over the run's model calls (catalog.gateway.transcript):
verification recomputes it from the stored call bodies, so a call altered, added or removed after the run is
found. Statements signed before the gateway have no such members and verify as before.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.utils import timezone

from ..gateway.transcript import run_transcript_sha256
from ..gitrefs import is_valid_ref
from ..models import AgentGroup, AgentRun, ProvenanceRecord
from ..numbers import small_int
from ..runners.gitcopy import Git, GitError
from ..services.errors import InvalidInput
from . import crypto
from .usage_view import run_usage

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

    usage = run_usage(run)

    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f"{group.repository.slug}@{branch}", "digest": {"gitCommit": commit, "gitTree": tree}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "prompt": {"sha256": group.prompt_sha256},
            "requester": group.requester.username,
            "team": group.team.slug,
            "agent": {"identity": run.principal, "group": group.pk, "run": run.pk, "index": run.index},
            "tool": {"slug": run.tool.slug, "version": run.tool_version.version},
            "template_version": None,
            "repository": {"slug": group.repository.slug, "url": group.repository_url},
            "base_commit": group.base_commit,
            "branch": branch,
            "diff_sha256": hashlib.sha256(run.diff.encode()).hexdigest(),
            **(
                {"workspace": {"id": str(group.workspace_id), "snapshot_sha256": group.workspace_snapshot_sha256}}
                if group.workspace_id
                else {}
            ),
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
            "models": list(usage.models),
            "usage": {
                "model_calls": usage.model_calls,
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cost_usd": usage.cost,
            },
            # the digest the worker stored when the run ended (computed now if it has none)
            "transcript_sha256": run.transcript_sha256 or run_transcript_sha256(run.pk),
        },
    }


def _commit(group: AgentGroup, run: AgentRun, branch: str) -> tuple[str, str]:
    """Commit the run's diff onto a new branch from the base commit, never touching the user's checkout."""
    requester = group.requester
    # a group from a workspace: the commit holds the workspace's uncommitted changes the run started from too
    # (git apply takes the two patches in turn, also where they touch the same file)
    diff = (group.workspace_snapshot or "") + run.diff if group.workspace_id else run.diff
    with Git(group.repository_url, group.repository.credential()) as git:
        return git.commit_diff(
            run.sandbox.get("base_commit") or group.base_commit or group.base_ref,
            diff,
            branch,
            commit_message(group, run),
            trailers_for(group, run),
            (
                requester.get_full_name() or requester.username,
                requester.email or f"{requester.username}@goldpath.invalid",
            ),
        )


def commit_and_sign(*, group_id: int) -> ProvenanceRecord:
    """Make the commit and the signed record (raises GitError); catalog.services.agent_groups records the outcome."""
    group = AgentGroup.objects.select_related("requester", "team", "repository").get(pk=group_id)
    run = AgentRun.objects.select_related("tool", "tool_version").get(pk=group.accepted_run_id)
    branch = branch_name(group, run)
    commit, tree = _commit(group, run, branch)
    statement = build_statement(group, run, commit=commit, tree=tree, branch=branch)
    return ProvenanceRecord.objects.create(
        group=group,
        run=run,
        team=group.team,
        repository=group.repository,
        repository_url=group.repository_url,
        branch=branch,
        commit_sha=commit,
        tree_sha=tree,
        statement=statement,
        signature=crypto.sign(canonical(statement)),
        key_id=crypto.key_id(),
    )


# --- verification and lookup -------------------------------------------------------------------


@dataclass
class Verification:
    ok: bool
    problems: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


def _trailers_of(git: Git, repo: Path, commit: str) -> dict[str, str]:
    message = git.run(["log", "-1", "--format=%B", commit], cwd=repo)
    found = {}
    for line in message.splitlines():
        m = re.match(r"^(Goldpath-[\w-]+):\s*(.*)$", line.strip())
        if m:
            found[m.group(1)] = m.group(2)
    return found


def verify_record(record: ProvenanceRecord) -> Verification:
    """Signature over the stored statement, then the repository (a fresh bare clone): commit, tree, trailers,
    branch; then the run's model-call transcript against the signed digest."""
    credential = record.repository.credential() if record.repository else ""
    try:
        with Git(record.repository_url, credential) as git, git.bare_view() as repo:
            v = _verify(record, git, repo)
    except GitError as exc:
        v = Verification(ok=False, problems=[f"the repository cannot be read: {exc.message} (git: {exc.code})"])
    _verify_transcript(record, v)
    v.ok = not v.problems
    return v


def _verify_transcript(record: ProvenanceRecord, v: Verification) -> None:
    """Recompute the transcript digest from the run's stored model calls (statements signed before the gateway
    carry none: nothing to compare)."""
    predicate = record.statement.get("predicate") if isinstance(record.statement, dict) else None
    if not isinstance(predicate, dict) or "transcript_sha256" not in predicate:
        return
    signed = str(predicate.get("transcript_sha256") or "")
    actual = run_transcript_sha256(record.run_id)
    if actual != signed:
        v.problems.append(
            f"the run's model-call transcript (sha256 {actual[:16] or 'of no calls'}) differs from the signed "
            f"digest {signed[:16] or 'of no calls'}: recorded model calls were altered, added or removed"
        )
    elif signed:
        v.checks.append(f"model-call transcript matches the signed digest {signed[:16]}...")
    else:
        v.checks.append("no model calls recorded, as signed")


def _verify(record: ProvenanceRecord, git: Git, repo: Path) -> Verification:
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
    if not _ok(git, ["cat-file", "-e", f"{record.commit_sha}^{{commit}}"], repo):
        v.problems.append(f"commit {record.commit_sha[:12]} no longer exists in the repository")
        v.ok = False
        return v
    tree = git.run(["rev-parse", f"{record.commit_sha}^{{tree}}"], cwd=repo).strip()
    if tree != digest.get("gitTree"):
        v.problems.append(
            f"the commit's tree {tree[:12]} differs from the signed tree {str(digest.get('gitTree'))[:12]}"
        )
    else:
        v.checks.append(f"commit {record.commit_sha[:12]} has the signed tree {tree[:12]}")
    trailers = _trailers_of(git, repo, record.commit_sha)
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
    head = _out(git, ["rev-parse", "--verify", "-q", f"refs/heads/{record.branch}"], repo)
    if not head:
        v.problems.append(f"branch {record.branch} no longer exists")
    elif not _ok(git, ["merge-base", "--is-ancestor", record.commit_sha, head], repo):
        v.problems.append(f"branch {record.branch} was rewritten: it no longer contains {record.commit_sha[:12]}")
    else:
        v.checks.append(f"branch {record.branch} contains the commit")
    v.ok = not v.problems
    return v


def _ok(git: Git, args: list[str], repo: Path) -> bool:
    return _out(git, args, repo) is not None


def _out(git: Git, args: list[str], repo: Path) -> str | None:
    try:
        return git.run(args, cwd=repo).strip()
    except GitError:
        return None


def commit_for_line(repository, path: str, line: int, ref: str = "HEAD") -> str:
    """`git blame` one line of a registered repository (in a fresh bare clone): the commit that last changed it.

    Raises GitError when the repository cannot be read or the line does not exist."""
    with Git(repository.url, repository.credential()) as git, git.bare_view() as repo:
        out = git.run(["blame", "--porcelain", "-L", f"{line},{line}", ref, "--", path], cwd=repo, code="ref_not_found")
    return out.split(" ", 1)[0].strip()


def lookup_errors(path: str, line: str, ref: str) -> dict[str, list[str]]:
    """Field errors of a line lookup (path, line, ref), the same for the page and the API."""
    errors: dict[str, list[str]] = {}
    if not path or path.startswith("-") or "\x00" in path:
        errors["path"] = ["Give a file path in the repository."]
    if not small_int(line):
        errors["line"] = ["Give a line number (1 or more)."]
    if not is_valid_ref(ref):
        errors["ref"] = ["Give a branch or commit."]
    return errors


def blame_lookup(visible, slug: str, path: str, line: str, ref: str) -> str | None:
    """The commit behind one line, for the page and the API alike: only repositories the caller has records
    for are blamed (no probing of other repositories). None when there is none; InvalidInput for bad input."""
    errors = lookup_errors(path, line, ref)
    if not slug:
        errors["repository"] = ["Give ?commit=, or ?repository=&path=&line=."]
    if errors:
        raise InvalidInput("The lookup is not valid.", errors=errors)
    record = visible.filter(repository__slug=slug).select_related("repository").first()
    if record is None:
        return None
    try:
        return commit_for_line(record.repository, path, small_int(line) or 0, ref)
    except GitError:
        raise InvalidInput(
            "git blame found no such line.", errors={"line": [f"{path}:{line} at {ref} does not exist."]}
        ) from None
