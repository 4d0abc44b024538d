"""Agent group and run services: launch (policy first), cancel, accept, the worker's claim/finish, the reaper.

Every change locks its row, checks the role (403) then the state (409), and writes its audit event in the
same transaction. Runs are sent to the `agents` queue on commit; the task claims its row and re-takes the
policy decision before it launches anything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .. import audit, permissions, selectors
from ..conf import goldpath_settings
from ..models import (
    RUN_ACTIVE,
    RUN_FINAL,
    RUN_IN_FLIGHT,
    AcceptStatus,
    AgentGroup,
    AgentGroupStatus,
    AgentRun,
    AgentRunLogLine,
    AgentRunStatus,
    AITool,
    DataClassification,
    NetworkPolicy,
    Repository,
    Team,
    ToolVersion,
)
from ..policy import PolicyContext, decide
from ..usage import record_usage
from .errors import InvalidInput, NotPermitted, QuotaExceeded, TransitionNotAllowed
from .repositories import repository_for_use, repository_use_denied, valid_ref_name


def prompt_sha256(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()


def _latest_version(tool: AITool, pin: str | None = None) -> ToolVersion:
    """The approved version an agent of this tool runs: the pinned one (exact, or the newest matching `2.1.x`),
    else the newest approved one with a launch command (numeric order). Only approved versions ever launch;
    raises tool_version_rules.FieldError saying why none may run."""
    from .tool_versions import launchable_version

    return launchable_version(tool, pin)


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
        from .agent_workspace import check_workspace_usable, owned_workspace

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
    from .tool_version_rules import FieldError, clean_pin

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
            version = _latest_version(tool, pin)
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
    from ..runners.gitcopy import Git, GitError, is_local

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
    from ..tasks.agents import dispatch_group

    dispatch_group.delay(group_id)


def _send_runs(run_ids: list[int]) -> None:
    """One broker connection for the whole fan-out (a connection per message costs ~5 ms on Redis)."""
    from ..tasks.agents import run_agent

    with run_agent.app.producer_or_acquire() as producer:
        for pk in run_ids:
            run_agent.apply_async((pk,), producer=producer)


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


# --- the worker's side of a run ---------------------------------------------------------------


@transaction.atomic
def agent_run_claim(*, run_id: int, worker: str, task_id: str = "") -> AgentRun | None:
    """Claim a pending run for this worker (None if it is no longer claimable).

    Raises QuotaExceeded when the team already has AGENT_TEAM_CONCURRENCY runs in flight (the task retries).
    """
    run = AgentRun.objects.select_for_update().select_related("group").filter(pk=run_id).first()
    if run is None or run.status != AgentRunStatus.PENDING:
        return None
    group = AgentGroup.objects.select_for_update().get(pk=run.group_id)
    if group.status == AgentGroupStatus.CANCELED:
        return None
    Team.objects.select_for_update().filter(pk=group.team_id).first()  # serialises the team's claims
    in_flight = AgentRun.objects.filter(group__team_id=group.team_id, status__in=RUN_IN_FLIGHT).count()
    if in_flight >= int(goldpath_settings.AGENT_TEAM_CONCURRENCY):
        raise QuotaExceeded(f"team {group.team_id} has {in_flight} agent runs in flight")
    now = timezone.now()
    run.status = AgentRunStatus.STARTING
    run.worker = worker[:200]
    run.task_id = task_id[:64]
    run.started_at = now
    run.heartbeat_at = now
    run.save(update_fields=["status", "worker", "task_id", "started_at", "heartbeat_at"])
    if group.status == AgentGroupStatus.PENDING:
        group.status = AgentGroupStatus.RUNNING
        group.save(update_fields=["status"])
    audit.record(actor=run.principal, verb="agent_run.started", target=run, payload={"worker": run.worker})
    record_usage(
        "agent_run_started",
        user=group.requester,
        team=group.team_id and group.team,
        tool=run.tool,
        key=f"agent_run:{run.pk}:started",
    )
    return run


def agent_run_running(*, run: AgentRun, sandbox: dict[str, Any], workdir: str, sandbox_pid: int | None) -> bool:
    """Starting -> running once the sandbox process exists. False if the run was canceled or reaped meanwhile."""
    now = timezone.now()
    changed = AgentRun.objects.filter(pk=run.pk, status=AgentRunStatus.STARTING).update(
        status=AgentRunStatus.RUNNING, sandbox=sandbox, workdir=workdir, sandbox_pid=sandbox_pid, heartbeat_at=now
    )
    return bool(changed)


def agent_run_heartbeat(*, run_id: int) -> bool:
    """Touch the heartbeat; answers whether a cancel was asked (or the run was ended by someone else)."""
    AgentRun.objects.filter(pk=run_id, status__in=RUN_IN_FLIGHT).update(heartbeat_at=timezone.now())
    row = AgentRun.objects.filter(pk=run_id).values("status", "cancel_requested").first()
    return row is None or row["cancel_requested"] or row["status"] not in RUN_IN_FLIGHT


def agent_run_log(*, run_id: int, lines: list[tuple[str, str]]) -> int:
    """Append log lines (stream, text) with increasing seq; the last seq is kept on the run row."""
    if not lines:
        return 0
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().only("pk", "log_seq").get(pk=run_id)
        cap = int(goldpath_settings.AGENT_LOG_LINES_MAX)
        start = run.log_seq
        room = max(0, cap - start)
        keep = lines[:room]
        if len(lines) > room and start < cap + 1:
            keep.append(("system", f"[log truncated at {cap} lines]"))
        AgentRunLogLine.objects.bulk_create(
            [
                AgentRunLogLine(run_id=run_id, seq=start + i + 1, stream=s, text=t[:4000])
                for i, (s, t) in enumerate(keep)
            ]
        )
        AgentRun.objects.filter(pk=run_id).update(log_seq=start + len(keep))
    return len(keep)


@transaction.atomic
def agent_run_finish(
    *,
    run_id: int,
    status: str,
    exit_code: int | None = None,
    error: str = "",
    diff: str | None = None,
    diff_stat: dict | None = None,
    test_exit_code: int | None = None,
    test_output: str = "",
    sandbox: dict | None = None,
    actor: Any = None,
    reported_usage: dict | None = None,
) -> AgentRun | None:
    """End a run (idempotent: a run already final is left alone); revoke its identity and gateway credential;
    sum its metered model calls onto it; finish the group."""
    from ..agents.identity import token_revoke
    from ..gateway.metering import finalize_run_usage

    assert status in RUN_FINAL, status
    run = AgentRun.objects.select_for_update().select_related("group", "tool").filter(pk=run_id).first()
    if run is None or run.status in RUN_FINAL:
        return None
    run.status = status
    run.finished_at = timezone.now()
    run.exit_code = exit_code
    run.error = (error or "")[:4000]
    if diff is not None:
        run.diff = diff
    if diff_stat is not None:
        run.diff_stat = diff_stat
    run.test_exit_code = test_exit_code
    run.test_output = (test_output or "")[-20000:]
    if sandbox:
        run.sandbox = {**run.sandbox, **sandbox}
    if reported_usage is not None:
        run.reported_usage = reported_usage
    run.save()
    token_revoke(run)
    finalize_run_usage(run.pk)
    run.refresh_from_db(fields=["model_calls", "input_tokens", "output_tokens", "cost_usd", "transcript_sha256"])
    audit.record(
        actor=actor or run.principal,
        verb="agent_run.finished",
        target=run,
        payload={
            "status": status,
            "exit_code": exit_code,
            "error": run.error[:500],
            "test_exit_code": test_exit_code,
            "policy_hash": run.sandbox.get("policy_hash", ""),
            "egress_denied": sorted(
                {f"{e.get('host')}:{e.get('port')}" for e in run.sandbox.get("egress", []) if not e.get("allowed")}
            ),
            "model_calls": run.model_calls,
            "input_tokens": run.input_tokens,
            "output_tokens": run.output_tokens,
            "cost_usd": str(run.cost_usd),
            "transcript_sha256": run.transcript_sha256,
        },
    )
    group = run.group
    record_usage(
        "agent_run_finished",
        user=group.requester,
        team=group.team,
        tool=run.tool,
        tool_version=run.tool_version,
        duration_s=run.duration_s,
        outcome=status,
        key=f"agent_run:{run.pk}:finished",
    )
    _maybe_finish_group(group.pk)
    return run


def _maybe_finish_group(group_id: int) -> None:
    group = AgentGroup.objects.select_for_update().get(pk=group_id)
    if group.status in (AgentGroupStatus.FINISHED, AgentGroupStatus.CANCELED):
        return
    if group.runs.filter(status__in=RUN_ACTIVE).exists():
        return
    group.status = AgentGroupStatus.FINISHED
    group.finished_at = timezone.now()
    group.save(update_fields=["status", "finished_at"])
    counts = {s: group.runs.filter(status=s).count() for s in RUN_FINAL}
    audit.record(actor=None, verb="agent_group.finished", target=group, payload={"runs": counts})


# --- agent identity endpoints -------------------------------------------------------------------


def agent_run_report(*, run: AgentRun, progress: str = "", result: dict | None = None) -> AgentRun:
    """The run's own agent reports progress or attaches results (only while the run is in flight)."""
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().get(pk=run.pk)
        if run.status not in RUN_IN_FLIGHT:
            raise TransitionNotAllowed(f"The run is {run.status}; it no longer accepts reports.")
        fields = []
        if progress:
            run.progress = progress[:500]
            fields.append("progress")
        if result is not None:
            run.result = {**run.result, **result}
            fields.append("result")
        if fields:
            run.save(update_fields=fields)
        audit.record(
            actor=run.principal,
            verb="agent_run.reported",
            target=run,
            payload={"progress": progress[:200], "result_keys": sorted((result or {}).keys())},
        )
    if progress:
        agent_run_log(run_id=run.pk, lines=[("agent", f"progress: {progress[:500]}")])
    return run


# --- reaper -----------------------------------------------------------------------------------


def agent_runs_reap(*, now: dt.datetime | None = None, bound_s: int | None = None) -> dict[str, list[int]]:
    """Fail in-flight runs whose worker stopped heartbeating; clean their copy; re-send lost pending runs."""
    from ..agents.execution import cleanup_after_worker_loss

    now = now or timezone.now()
    bound = int(bound_s if bound_s is not None else goldpath_settings.AGENT_REAPER_BOUND_S)
    stale = AgentRun.objects.filter(status__in=RUN_IN_FLIGHT).filter(
        Q(heartbeat_at__lt=now - dt.timedelta(seconds=bound)) | Q(heartbeat_at__isnull=True)
    )
    failed: list[int] = []
    for pk in stale.values_list("pk", flat=True):
        run = AgentRun.objects.filter(pk=pk).first()
        if run is None:
            continue
        cleanup_after_worker_loss(run)
        done = agent_run_finish(
            run_id=pk,
            status=AgentRunStatus.FAILED,
            error=f"The worker {run.worker or '?'} stopped (no heartbeat for {bound} s); the run was failed by the reaper.",
            actor=None,
        )
        if done is not None:
            failed.append(pk)
    # pending runs whose message was lost (embedded brokers lose tasks when a worker dies): send them again
    resent: list[int] = []
    lost = AgentRun.objects.filter(
        status=AgentRunStatus.PENDING,
        group__status__in=(AgentGroupStatus.PENDING, AgentGroupStatus.RUNNING),
        created_at__lt=now - dt.timedelta(seconds=max(bound * 10, 300)),
    )
    resent = list(lost.values_list("pk", flat=True)[:500])
    if resent:
        _send_runs(resent)
    return {"failed": failed, "resent": resent}


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
    from ..tasks.agents import accept_run

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


# --- vendor API keys ----------------------------------------------------------------------------

ENV_VAR_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,99}$")
RESERVED_ENV = {"PATH", "HOME", "PYTHONPATH", "LANG", "LD_PRELOAD", "LD_LIBRARY_PATH"}


@transaction.atomic
def vendor_api_key_set(*, team: Team, tool: AITool, actor: Any, env_var: str, value: str):
    """Store (or replace) a team's key for a tool, Fernet-encrypted; only the last 4 characters stay readable."""
    from ..agents import crypto
    from ..models import VendorApiKey

    if not permissions.can_manage_vendor_keys(actor):
        raise NotPermitted("Only platform engineers manage vendor API keys.")
    errors = {}
    env_var = (env_var or "").strip()
    if not ENV_VAR_RE.match(env_var) or env_var in RESERVED_ENV or env_var.startswith("GOLDPATH_"):
        errors["env_var"] = ["Give an upper-case environment variable name (not PATH, HOME or GOLDPATH_*)."]
    value = (value or "").strip()
    if len(value) < 8:
        errors["value"] = ["Give the whole key (8 characters or more)."]
    if errors:
        raise InvalidInput("The vendor API key is not valid.", errors=errors)
    key, created = VendorApiKey.objects.select_for_update().get_or_create(
        team=team, tool=tool, defaults={"env_var": env_var, "ciphertext": "", "created_by": actor}
    )
    key.env_var = env_var
    key.ciphertext = crypto.encrypt(value)
    key.last4 = value[-4:]
    key.created_by = actor
    key.save()
    audit.record(
        actor=actor,
        verb="vendor_api_key.created" if created else "vendor_api_key.replaced",
        target=key,
        payload={"team": team.slug, "tool": tool.slug, "env_var": env_var, "api_key": value, "last4": key.last4},
    )
    return key


@transaction.atomic
def vendor_api_key_delete(*, key, actor: Any) -> None:
    if not permissions.can_manage_vendor_keys(actor):
        raise NotPermitted("Only platform engineers manage vendor API keys.")
    audit.record(
        actor=actor,
        verb="vendor_api_key.deleted",
        target=key,
        payload={"team": key.team.slug, "tool": key.tool.slug, "env_var": key.env_var, "last4": key.last4},
    )
    key.delete()

