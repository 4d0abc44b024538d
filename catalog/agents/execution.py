"""The worker side of one agent run, from the policy re-check to the cleanup.

Policy re-check, own copy of the repository, sandboxed launch, streamed logs, heartbeat and cancel, diff,
optional tests, and cleanup in `finally`.

Layout: each run has a private folder under the sandbox root (outside GOLDPATH_HOME, which is 0700:
sandboxes run as an unprivileged uid of their own when the worker is root) holding `repo`, the run's clone of
its registered repository at the base commit, and `sbx-<runner>`, each sandbox's scratch dir (its sockets, the
demo agent's copy, its /etc). The folder is recorded as the run's `workdir` and removed when the run ends, or
by the reaper when its worker died (catalog.agents.workdirs).

The worker never runs git in the copy the agent wrote: the diff is computed by git inside a sandbox of the
same profile (no privilege, no network, no secret), and only its text comes out. `test_command` runs with no
secret at all: no vendor key, no identity token.

The agent's identity token is handed to the agent in its environment and accepted only on the run's own
socket (`GOLDPATH_AGENT_SOCKET`), which serves just this run's `progress/` and `result/` endpoints.

Model calls: a real CLI is pointed at Goldpath's model gateway by its own base-URL setting, at the sandbox's
proxy address (`http://127.0.0.1:3128`), which relays `/v1/...` to the web tier's gateway (GATEWAY_URL). Its
API-key variables hold the run's gateway credential, never a vendor key: the gateway adds the team's key
upstream. A run whose model calls the gateway refused ends `failed` with the reason, whatever the CLI's exit.
The tool version's runtime is installed on first use (catalog.runtimes) and seen read-only by the sandbox.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any

from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.urls import reverse

from ..conf import goldpath_settings
from ..masking import mask_values
from ..models import AgentRun, AgentRunStatus, TokenPurpose, VersionReview
from ..policy import PolicyContext
from ..runners.agentsock import AgentSocket, portal_host
from ..runners.gitcopy import GIT_ENV, Git, GitError, diff_command
from ..runners.sandbox import (
    SandboxRunner,
    SandboxUnavailable,
    expand_argv,
    is_root,
    private_dir,
    sandbox_uid,
)
from ..runtimes import RuntimeInstallError, ensure_installed
from ..services.access import tool_use_record
from ..services.agent_runs import agent_run_finish, agent_run_heartbeat, agent_run_running
from . import cli_usage, identity
from .launch import gateway_env, gateway_route, gateway_secrets, launch_argv, network_for, tool_env
from .run_log import RunLog, diff_stat
from .workdirs import sandboxes
from .workspace_snapshot import prepare_run_copy
from .workspace_tree import TreeError

HEARTBEAT_S = 1.0


DIFF_MAX_BYTES = 20 << 20  # a larger diff fails the run instead of filling the database
DIFF_TIME_LIMIT_S = 120


def agent_api(run_id: int) -> str:
    """The run's own API path (wherever the host mounts the API)."""
    return reverse("goldpath:api:agentrun-detail", kwargs={"pk": run_id})


def agent_endpoints(run_id: int) -> list[str]:
    """The paths a run's socket lets through: its own agent endpoints, nothing else."""
    return [re.escape(agent_api(run_id)) + "(progress|result)/"]


def _agent_socket(run_id: int):
    """A factory for the run's own socket, serving the portal's API handler in this worker."""
    handler = WSGIHandler()
    return lambda path: AgentSocket(
        path, handler, run_id=str(run_id), paths=agent_endpoints(run_id), host=portal_host()
    )


def _runner(
    argv,
    workdir,
    *,
    env,
    secrets,
    time_limit,
    network,
    logs: RunLog,
    beat,
    scratch,
    uid,
    agent_socket=None,
    capture_stdout=0,
    masked=(),
    runtime=None,
    gateway=False,
):
    return SandboxRunner(
        argv,
        workdir,
        env=env,
        secrets=secrets,
        time_limit=time_limit,
        memory_mb=int(goldpath_settings.AGENT_MEMORY_MB),
        max_processes=int(goldpath_settings.AGENT_MAX_PROCESSES),
        network=network,
        on_log=logs.add,
        heartbeat=beat,
        heartbeat_interval=HEARTBEAT_S,
        allow_unsandboxed=bool(goldpath_settings.AGENT_ALLOW_UNSANDBOXED),
        scratch_root=scratch,
        root=goldpath_settings.SANDBOX_ROOT or None,
        agent_socket=agent_socket,
        uid=uid,
        python=str(goldpath_settings.AGENT_PYTHON or ""),
        capture_stdout=capture_stdout,
        masked=masked,
        runtime=runtime,
        gateway=gateway_route() if gateway else None,  # only the agent itself reaches the model gateway
    )


def _sandboxed_diff(copy: Path, base_sha: str, *, logs: RunLog, beat, scratch: Path, uid, masked) -> str:
    """The copy's changes against base_sha (untracked files included), computed by git inside a sandbox."""
    runner = _runner(
        diff_command(base_sha),
        copy,
        env=dict(GIT_ENV),
        secrets={},
        time_limit=DIFF_TIME_LIMIT_S,
        network="none",
        logs=logs,
        beat=beat,
        scratch=scratch,
        uid=uid,
        capture_stdout=DIFF_MAX_BYTES,
        masked=masked,
    )
    result = runner.run()
    if result.status != "succeeded":
        raise DiffFailed(f"computing the diff failed ({result.status}, exit code {result.exit_code})")
    if runner.stdout_truncated:
        raise DiffFailed(f"the run's diff is larger than {DIFF_MAX_BYTES >> 20} MB")
    return bytes(runner.stdout).decode("utf-8", "replace")


class DiffFailed(RuntimeError):
    """The sandboxed `git diff` did not produce a diff."""


def execute_run(run_id: int) -> str:
    """Run a claimed (starting) run to its end; returns the final status. Never raises for agent failures."""
    run = AgentRun.objects.select_related(
        "group__requester", "group__team", "group__repository", "tool", "tool_version"
    ).get(pk=run_id)
    group = run.group
    logs = RunLog(run.pk)
    home: Path | None = None
    uid = sandbox_uid() if is_root() else None
    status, exit_code, error = AgentRunStatus.FAILED, None, ""
    diff, stat, test_code, test_output = None, None, None, ""
    reported: dict[str, Any] = {}
    sandbox: dict[str, Any] = {}
    current: dict[str, Any] = {"runner": None}

    def beat() -> None:
        logs.flush()
        if agent_run_heartbeat(run_id=run.pk) and current["runner"] is not None:
            current["runner"].cancel()

    try:
        decision = tool_use_record(
            group.requester,
            run.tool,
            PolicyContext(classification=group.classification),
            "agent_run.launch",
            actor=run.principal,
            subject=run,
        )
        if not decision.allowed:
            error = "The policy denies this run now: " + "; ".join(r.message for r in decision.reasons)
            logs.add("system", error)
            return _finish(run.pk, AgentRunStatus.FAILED, error=error, logs=logs)
        if run.tool_version.review_state != VersionReview.APPROVED:
            error = f"{run.tool_version} is {run.tool_version.review_state} now, not approved; it does not run."
            logs.add("system", error)
            return _finish(run.pk, AgentRunStatus.FAILED, error=error, logs=logs)
        repository = group.repository
        if repository is None:
            raise GitError("unreachable", "the group names no registered repository")
        version = run.tool_version
        runtime = ensure_installed(version, progress=lambda line: logs.add("system", line))
        home = private_dir(sandboxes(), f"run-{run.pk}-", uid)
        copy = home / "repo"
        logs.add("system", f"cloning repository {repository.slug} at {group.base_commit or group.base_ref}")
        with Git(group.repository_url, repository.credential()) as git:
            if group.workspace_id:  # "run agents here": the workspace's checkout, uncommitted changes included
                base_sha, start_sha = prepare_run_copy(group, git, copy, say=lambda text: logs.add("system", text))
            else:
                base_sha = start_sha = git.prepare_copy(group.base_commit or group.base_ref, copy)
        token = identity.token_issue(run)
        secrets = {**gateway_secrets(identity.gateway_token_issue(run)), "GOLDPATH_AGENT_TOKEN": token}
        env = {
            **tool_env(run),
            **gateway_env(),
            "GOLDPATH_RUN": str(run.pk),
            "GOLDPATH_AGENT_IDENTITY": run.principal,
            "GOLDPATH_AGENT_API": agent_api(run.pk),
        }
        if run.model:
            env["GOLDPATH_MODEL"] = run.model
        argv = launch_argv(run, group.prompt)
        runner = _runner(
            argv,
            copy,
            env=env,
            secrets=secrets,
            time_limit=float(group.time_limit_s),
            network=network_for(run),
            logs=logs,
            beat=beat,
            scratch=home,
            uid=uid,
            agent_socket=_agent_socket(run.pk),
            runtime=runtime,
            gateway=True,
        )
        current["runner"] = runner
        sandbox = {
            "runner_id": runner.run_id,
            "host": socket.gethostname(),
            "base_commit": base_sha,
            "network_policy": group.network_policy,
        }
        if start_sha != base_sha:
            sandbox["snapshot_commit"] = start_sha  # the workspace snapshot the agent started from
        if not agent_run_running(run=run, sandbox=sandbox, workdir=str(home), pgid=os.getpid()):
            return _finish(run.pk, AgentRunStatus.CANCELED, error="Canceled before the sandbox started.", logs=logs)
        logs.keep_agent_output = True
        result = runner.run()
        logs.keep_agent_output = False
        # the agent is gone: its gateway credential ends now (a test command must not call models with it)
        identity.token_revoke(run, TokenPurpose.GATEWAY)
        current["runner"] = None
        status, exit_code = result.status, result.exit_code
        reported = cli_usage.parse_usage(version.usage_format, "\n".join(logs.agent_output))
        sandbox.update(
            {
                "description": result.sandbox,
                "policy_hash": result.policy_hash,
                "limits_applied": result.limits_applied,
                "egress": result.egress[:200],
            }
        )
        if status == AgentRunStatus.TIMED_OUT:
            error = f"The agent ran past its time limit ({group.time_limit_s} s); its process tree was killed."
        elif status == AgentRunStatus.FAILED:
            error = f"The agent exited with code {exit_code}."
        elif status == AgentRunStatus.CANCELED:
            error = "Canceled while running; the process tree was killed."
        refusal = AgentRun.objects.filter(pk=run.pk).values_list("gateway_refusal", flat=True).first()
        if refusal and status in (AgentRunStatus.SUCCEEDED, AgentRunStatus.FAILED):
            status, error = AgentRunStatus.FAILED, f"The model gateway refused a model call: {refusal}"
            logs.add("system", error)
        denied = [e for e in result.egress if not e.get("allowed")]
        if denied:
            hosts = ", ".join(sorted({f"{e['host']}:{e['port']}" for e in denied}))
            logs.add("system", f"network attempts denied by policy: {hosts}")
        if status in (AgentRunStatus.SUCCEEDED, AgentRunStatus.FAILED):
            diff = _sandboxed_diff(
                copy, start_sha, logs=logs, beat=beat, scratch=home, uid=uid, masked=list(secrets.values())
            )
            stat = diff_stat(diff)
        if status == AgentRunStatus.SUCCEEDED and group.test_command:
            logs.add("system", f"running tests: {group.test_command}")
            logs.flush()
            logs.capture = True
            tester = _runner(
                expand_argv(list(group.test_command), group.prompt, run.index),
                copy,
                env={k: v for k, v in env.items() if k != "GOLDPATH_AGENT_API"},
                secrets={},  # the developer's own command: no vendor key, no identity token, no socket
                masked=list(secrets.values()),  # nor what the agent may have written of them
                time_limit=float(group.time_limit_s),
                network=[],
                logs=logs,
                beat=beat,
                scratch=home,
                uid=uid,
            )
            current["runner"] = tester
            test_result = tester.run()
            current["runner"] = None
            logs.capture = False
            test_code = test_result.exit_code if test_result.status != "timed_out" else -1
            test_output = "\n".join(logs.captured)
            sandbox["tests"] = {"status": test_result.status, "exit_code": test_code}
        # the agent saw its own credentials (never a vendor key): whatever it wrote down of them stays masked
        diff = mask_values(diff, secrets.values()) if diff else diff
        test_output = mask_values(test_output, secrets.values())
    except (SandboxUnavailable, RuntimeInstallError) as exc:
        status, error = AgentRunStatus.FAILED, str(exc)
        logs.add("system", error)
    except GitError as exc:
        status, error = AgentRunStatus.FAILED, f"{exc.message} (git: {exc.code})"
        logs.add("system", error)
    except (DiffFailed, TreeError) as exc:
        status, error = AgentRunStatus.FAILED, str(exc)
        logs.add("system", error)
    except Exception as exc:  # noqa: BLE001 - any failure ends the run `failed` with the reason
        status, error = AgentRunStatus.FAILED, f"{type(exc).__name__}: {exc}"[:2000]
        logs.add("system", f"error: {error}")
    finally:
        runner = current.get("runner")
        if runner is not None:
            runner.cancel()
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)
    return _finish(
        run.pk,
        status,
        exit_code=exit_code,
        error=error,
        diff=diff,
        stat=stat,
        test_exit_code=test_code,
        test_output=test_output,
        sandbox=sandbox,
        reported_usage=reported,
        logs=logs,
    )


def _finish(run_id: int, status: str, *, logs: RunLog, error: str = "", **kw) -> str:
    logs.add("system", f"run ended: {status}" + (f" ({error})" if error else ""))
    try:
        logs.flush()
    except Exception:  # noqa: BLE001 - logs never keep a run from ending
        close_old_connections()
    agent_run_finish(
        run_id=run_id,
        status=status,
        exit_code=kw.get("exit_code"),
        error=error,
        diff=kw.get("diff"),
        diff_stat=kw.get("stat"),
        test_exit_code=kw.get("test_exit_code"),
        test_output=kw.get("test_output", ""),
        sandbox=kw.get("sandbox"),
        reported_usage=kw.get("reported_usage"),
    )
    return status
