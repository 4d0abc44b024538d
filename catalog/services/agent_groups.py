"""Agent groups: launch one prompt fanned out to agent runs (policy first), cancel them, accept one run's result.

Every change locks its row, checks the role (403) then the state (409), and writes its audit event in the
same transaction. Runs are sent to the `agents` queue on commit; the task claims its row and re-takes the
policy decision before it launches anything (catalog.services.agent_runs). Accepting commits in a worker.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import audit, permissions, selectors
from ..agents.provenance import commit_and_sign
from ..conf import goldpath_settings
from ..models import (
    RUN_IN_FLIGHT,
    AcceptStatus,
    AgentGroup,
    AgentGroupStatus,
    AgentRun,
    AgentRunStatus,
    AITool,
    DataClassification,
    NetworkPolicy,
    ProvenanceRecord,
    Repository,
    Team,
    ToolVersion,
)
from ..policy import PolicyContext, decide
from ..runners.gitcopy import Git, GitError, is_local
from ..usage import record_usage
from .agent_workspace import check_workspace_usable, owned_workspace
from .errors import InvalidInput, NotPermitted, TransitionNotAllowed
from .repositories import repository_for_use, repository_use_denied, valid_ref_name
from .tool_version_rules import FieldError, clean_pin, launchable_version


def prompt_sha256(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()


def _team_for(actor: Any, team: Team | None) -> Team:
    mine = selectors.team_ids_of(actor)
    if team is not None:
        if team.pk not in mine:
            raise NotPermitted(f"You are not a member of team {team.slug}.")
        return team
    found = Team.objects.filter(pk__in=mine).order_by("slug").first()
    if found is None:
        raise NotPermitted("Agent runs are launched for a team; you belong to none.")
    return found


# --- launch -----------------------------------------------------------------------------------


def agent_group_create(**kwargs: Any) -> AgentGroup:
    """Fan a prompt out to agents (see _agent_group_create); a refused repository is audited, as every decision.

    The runs start from a registered `repository`, or from a `workspace`'s current checkout (exactly one)."""
    has_repo = bool(str(kwargs.get("repository") or "").strip())
    has_ws = bool(str(kwargs.get("workspace") or "").strip())
    if has_repo == has_ws:
        text = "Give a repository or a workspace, not both." if has_repo else "Give a repository or a workspace."
        raise InvalidInput(text, errors={"repository": [text], "workspace": [text]})
    try:
        return _agent_group_create(**kwargs)
    except InvalidInput as exc:
        if "repository" in exc.errors:
            repository_use_denied(actor=kwargs.get("actor"), slug=kwargs.get("repository"), purpose="agent_group")
        raise


@transaction.atomic
def _agent_group_create(
    *,
    actor: Any,
    prompt: str,
    agents: list[dict[str, Any]],
    repository: str | None = None,
    workspace: Any = None,
    base_ref: str | None = None,
    classification: str | None = None,
    test_command: list[str] | None = None,
    time_limit_s: int | None = None,
    network_policy: str = NetworkPolicy.NONE,
    team: Team | None = None,
) -> AgentGroup:
    """Fan a prompt out to agents on a registered repository (by slug). The policy decides every tool first:
    any deny -> 403, nothing launched. The group's data classification is the repository's."""
    if not permissions.can_launch_agents(actor):
        raise NotPermitted("Your role may not launch agent runs.")
    ws = None
    if workspace:
        ws = owned_workspace(actor=actor, workspace_id=workspace)
        check_workspace_usable(ws)
        # the workspace's registered repository: provenance and accept work as for any group
        repository = str((ws.parameters or {}).get("repository") or "")
        base_ref = base_ref or str((ws.parameters or {}).get("ref") or "") or None
        team = ws.team
    team = _team_for(actor, team)
    errors: dict[str, list[str]] = {}
    prompt = (prompt or "").strip()
    if not prompt:
        errors["prompt"] = ["Give a prompt."]
    repo: Repository | None = None
    try:
        repo = repository_for_use(actor=actor, slug=(repository or "").strip(), team=team)
    except InvalidInput as exc:
        errors.update(exc.errors)
    base_ref = (base_ref or (repo.default_branch if repo else "HEAD")).strip()
    if not valid_ref_name(base_ref):
        errors["base_ref"] = ["Give a branch, tag or commit."]
    if repo is not None:
        floor = repo.data_classification
        if ws is not None and DataClassification.rank(ws.classification) > DataClassification.rank(floor):
            floor = ws.classification
        classification = classification or floor
        if classification in DataClassification.values and DataClassification.rank(
            classification
        ) < DataClassification.rank(floor):
            errors["classification"] = [
                f"Repository {repo.slug} holds {floor} data; a run on it is {floor} or higher, not {classification}."
            ]
    limit_max = int(goldpath_settings.AGENT_MAX_TIME_LIMIT_S)
    time_limit_s = int(time_limit_s or goldpath_settings.AGENT_DEFAULT_TIME_LIMIT_S)
    if not 1 <= time_limit_s <= limit_max:
        errors["time_limit_s"] = [f"Give 1 to {limit_max} seconds."]
    if network_policy not in NetworkPolicy.values:
        errors["network_policy"] = [f"Choose one of: {', '.join(NetworkPolicy.values)}."]
    if (
        classification is not None
        and classification not in DataClassification.values
        and "classification" not in errors
    ):
        errors["classification"] = [f"Choose one of: {', '.join(DataClassification.values)}."]
    test_command = list(test_command or [])
    if any(not isinstance(a, str) or not a for a in test_command):
        errors["test_command"] = ["Give the test command as a list of non-empty arguments."]
    # (tool, version, model, count): the version pinned (exact or `2.1.x`) or the newest approved; the model one
    # the version allows, by default its first ("" when it lists none)
    specs: list[tuple[AITool, ToolVersion, str, int]] = []
    total = 0
    agent_errors: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for spec in agents or []:
        slug = str(spec.get("tool", ""))
        count = spec.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            agent_errors.append(f"{slug}: count must be a positive integer.")
            continue
        tool = AITool.objects.filter(slug=slug).first()
        if tool is None:
            agent_errors.append(f"No tool {slug!r} in the catalog.")
            continue
        try:
            pin = clean_pin(spec["version"]) if spec.get("version") not in (None, "") else None
            version = launchable_version(tool, pin)
        except FieldError as exc:
            agent_errors.append(f"{slug}: {exc}" if not str(exc).startswith((slug, tool.name)) else str(exc))
            continue
        allowed = list(version.model_names or [])
        model = spec.get("model")
        if model in (None, ""):
            model = allowed[0] if allowed else ""
        elif model not in allowed:
            agent_errors.append(
                f"{slug} {version.version} may not use model {str(model)[:200]!r}; "
                + (f"allowed: {', '.join(allowed)}." if allowed else "it lists no models.")
            )
            continue
        if (slug, version.version, model) in seen:
            agent_errors.append(f"{slug} is listed twice; give one entry with a count.")
            continue
        seen.add((slug, version.version, model))
        specs.append((tool, version, model, count))
        total += count
    if not agents:
        agent_errors.append("Ask for at least one agent.")
    max_runs = int(goldpath_settings.AGENT_MAX_RUNS)
    if total > max_runs:
        agent_errors.append(f"At most {max_runs} runs in one group (asked {total}).")
    if agent_errors:
        errors["agents"] = agent_errors
    if errors:
        raise InvalidInput("The agent group is not valid.", errors=errors)
    # the policy decides every tool before anything is written or launched
    context = PolicyContext(classification=classification)
    decisions = {tool.slug: decide(actor, tool, context) for tool, _v, _m, _c in specs}
    denied = {slug: d for slug, d in decisions.items() if not d.allowed}
    if denied:
        raise NotPermitted(
            "The policy denies " + ", ".join(sorted(denied)) + "; nothing was launched.",
            reasons=[{"tool": slug, **r.as_dict()} for slug, d in sorted(denied.items()) for r in d.reasons],
        )
    assert repo is not None
    # a workspace's base is its checkout's HEAD, read by the worker when it takes the snapshot
    base_commit = _local_base_commit(repo, base_ref) if ws is None else ""
    group = AgentGroup.objects.create(
        workspace=ws,
        requester=actor,
        team=team,
        prompt=prompt,
        prompt_sha256=prompt_sha256(prompt),
        repository=repo,
        repository_url=repo.url,
        base_ref=base_ref,
        base_commit=base_commit,
        classification=classification,
        test_command=test_command,
        agents=[{"tool": t.slug, "version": v.version, "model": m, "count": c} for t, v, m, c in specs],
        time_limit_s=time_limit_s,
        network_policy=network_policy,
        decisions={slug: d.as_dict() for slug, d in decisions.items()},
    )
    runs = []
    index = 0
    for tool, version, model, count in specs:
        for _ in range(count):
            index += 1
            runs.append(
                AgentRun(
                    group=group,
                    index=index,
                    tool=tool,
                    tool_version=version,
                    model=model,
                    argv_template=version.launch_command,
                )
            )
    AgentRun.objects.bulk_create(runs)
    audit.record(
        actor=actor,
        verb="agent_group.created",
        target=group,
        payload={
            "team": team.slug,
            "prompt_sha256": group.prompt_sha256,
            "repository": repo.slug,
            "base_ref": base_ref,
            "base_commit": base_commit,
            "agents": group.agents,
            "runs": index,
            "classification": classification,
            "network_policy": network_policy,
            "decisions": group.decisions,
            **({"workspace": str(ws.pk)} if ws is not None else {}),
        },
    )
    group_id = group.pk
    transaction.on_commit(lambda: _send_dispatch(group_id))
    return group


def _local_base_commit(repo: Repository, base_ref: str) -> str:
    """Resolve the base ref now for a local repository (400 when it does not exist); remote ones in the worker."""
    if not is_local(repo.url):
        return ""
    try:
        with Git(repo.url) as git:
            return git.resolve(Path(repo.url), base_ref)
    except GitError:
        raise InvalidInput(
            "The base ref does not exist.",
            errors={"base_ref": [f"{base_ref!r} is not a commit in repository {repo.slug}."]},
        ) from None


def _send_dispatch(group_id: int) -> None:
    """One message for the fan-out: a worker sends the runs' messages (the request answers at once)."""
    from ..tasks.agents import dispatch_group  # this service's own task (it calls back into agent_runs_send)

    dispatch_group.delay(group_id)


# --- cancel -------------------------------------------------------------------------------------


def _may_act_on(actor: Any, group: AgentGroup) -> bool:
    if permissions.is_platform(actor):
        return True
    return group.requester_id == getattr(actor, "pk", None)


@transaction.atomic
def agent_group_cancel(*, group: AgentGroup, actor: Any) -> AgentGroup:
    """Stop every run: pending runs end `canceled` now; running ones are stopped by their worker."""
    if not _may_act_on(actor, group):
        raise NotPermitted("Only the requester or a platform engineer may cancel an agent group.")
    group = AgentGroup.objects.select_for_update().get(pk=group.pk)
    if group.status in (AgentGroupStatus.FINISHED, AgentGroupStatus.CANCELED):
        raise TransitionNotAllowed(f"The agent group is already {group.status}.")
    now = timezone.now()
    pending = list(group.runs.select_for_update().filter(status=AgentRunStatus.PENDING).values_list("pk", flat=True))
    AgentRun.objects.filter(pk__in=pending).update(
        status=AgentRunStatus.CANCELED, finished_at=now, error="Canceled before it started.", cancel_requested=True
    )
    in_flight = group.runs.filter(status__in=RUN_IN_FLIGHT).update(cancel_requested=True)
    group.status = AgentGroupStatus.CANCELED
    group.finished_at = now
    group.save(update_fields=["status", "finished_at"])
    audit.record(
        actor=actor,
        verb="agent_group.canceled",
        target=group,
        payload={"pending_canceled": pending, "stopping": in_flight},
    )
    return group


# --- accept -----------------------------------------------------------------------------------


@transaction.atomic
def agent_group_accept(*, group: AgentGroup, actor: Any, run: AgentRun) -> AgentGroup:
    """Accept a run: a worker commits its diff on `goldpath/<group>/<run>` of the registered repository and
    signs the provenance (the group shows `accepted_commit` when done). Never in the web process: pushing
    into a repository is git work on hostile data."""
    if not _may_act_on(actor, group):
        raise NotPermitted("Only the requester or a platform engineer may accept a result.")
    group = AgentGroup.objects.select_for_update().get(pk=group.pk)
    run = AgentRun.objects.select_for_update().filter(pk=run.pk, group=group).first()
    if run is None:
        raise InvalidInput("No such run in this group.", errors={"run": ["Choose a run of this group."]})
    if group.accept_status in (AcceptStatus.PENDING, AcceptStatus.DONE):
        raise TransitionNotAllowed(f"Run {group.accepted_run_id} of this group is already accepted.")
    if run.status != AgentRunStatus.SUCCEEDED:
        raise TransitionNotAllowed(f"Only a succeeded run can be accepted; run {run.pk} is {run.status}.")
    if not run.diff.strip():
        raise TransitionNotAllowed(f"Run {run.pk} changed nothing; there is nothing to commit.")
    if group.repository_id is None:
        raise TransitionNotAllowed("This group names no registered repository; its result cannot be committed.")
    group.accepted_run = run
    group.accept_status = AcceptStatus.PENDING
    group.accept_error = ""
    group.save(update_fields=["accepted_run", "accept_status", "accept_error"])
    audit.record(actor=actor, verb="agent_group.accept_requested", target=group, payload={"run": run.pk})
    from ..tasks.agents import accept_run  # this service's own task (it calls back into agent_group_accept_commit)

    group_id, actor_id = group.pk, getattr(actor, "pk", None)
    transaction.on_commit(lambda: accept_run.delay(group_id, actor_id))
    return group


@transaction.atomic
def agent_group_accept_done(
    *, group_id: int, commit: str = "", branch: str = "", error: str = "", actor: Any = None
) -> AgentGroup:
    group = AgentGroup.objects.select_for_update().select_related("team", "requester").get(pk=group_id)
    if error:
        group.accept_status = AcceptStatus.FAILED
        group.accept_error = error[:4000]
    else:
        group.accept_status = AcceptStatus.DONE
        group.accepted_commit = commit
        group.accepted_branch = branch
    group.save(update_fields=["accept_status", "accept_error", "accepted_commit", "accepted_branch"])
    audit.record(
        actor=actor,
        verb="agent_group.accept_failed" if error else "agent_group.accepted",
        target=group,
        payload={"run": group.accepted_run_id, "commit": commit, "branch": branch, "error": error[:500]},
    )
    if not error:
        run = AgentRun.objects.select_related("tool").get(pk=group.accepted_run_id)
        record_usage(
            "agent_result_accepted",
            user=group.requester,
            team=group.team,
            tool=run.tool,
            key=f"agent_group:{group.pk}:accepted",
        )
    return group


def agent_group_accept_commit(*, group_id: int, actor: Any = None) -> ProvenanceRecord | None:
    """The worker's half of accept: commit the run's diff, sign its provenance, record how it went on the group.

    A git failure ends the accept `failed` with a fixed message and code (raw git text stays in the worker's log).
    """
    try:
        record = commit_and_sign(group_id=group_id)
    except GitError as exc:
        agent_group_accept_done(group_id=group_id, error=f"{exc.message} (git: {exc.code})", actor=actor)
        return None
    agent_group_accept_done(group_id=group_id, commit=record.commit_sha, branch=record.branch, actor=actor)
    return record
