"""Provisioning tasks (queue `provisioning`): validate and publish template versions, run workspace builds,
reap, autostop.

`run_build(build_id)` claims the pending build under a row lock (a redelivered message finds it no
longer pending and does nothing), takes the policy decision again for each tool at the moment of use,
materialises the template version from the database, writes the variables to a JSON var-file, runs
Terraform with heartbeats, streams its events to the build log, and records outputs and the final status.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from .. import permissions, workspace_session
from ..conf import goldpath_home, goldpath_settings
from ..masking import mask_outputs
from ..models import (
    AITool,
    BuildStatus,
    DataClassification,
    Repository,
    Transition,
    Workspace,
    WorkspaceBuild,
    WorkspaceStatus,
)
from ..repository_urls import check_at_use
from ..services import builds as build_services
from ..services import templates as template_services
from ..services import workspace_parameters
from ..services import workspaces as ws_services
from ..services.access import tool_use_record
from ..workspace_agent import support_files

log = logging.getLogger(__name__)

# Fixed messages for a workspace's repository at build time: never raw git or server text.
REPOSITORY_MISSING = "Repository {slug} is no longer registered; update the workspace to use a registered repository."
REPOSITORY_NOT_FOR_TEAM = (
    "Repository {slug} is no longer registered for team {team}; update the workspace to use one that is."
)
REPOSITORY_REFUSED = (
    "Repository {slug} was not cloned: its address is no longer allowed. "
    "A platform engineer must correct its registration."
)
REPOSITORY_NEEDS_CREDENTIAL = (
    "Repository {slug} needs a credential; workspaces of repositories with a credential are not supported yet."
)


class RepositoryRefused(Exception):
    """The workspace's repository may not be used by this build; the message is fixed and safe to show."""


@shared_task(name="catalog.tasks.provisioning.publish_version", queue="provisioning")
def publish_version(version_id: int, actor_id: int | None = None) -> str:
    version = template_services.validate_and_publish(version_id, actor_id=actor_id)
    return version.status if version else "missing"


@shared_task(name="catalog.tasks.provisioning.validate_version", queue="provisioning")
def validate_version(version_id: int, actor_id: int | None = None) -> str:
    """Validate a draft without publishing it (the template page's and the API's `validate`)."""
    version = template_services.check_version(version_id, actor_id=actor_id, publish=False)
    return version.status if version else "missing"


@shared_task(name="catalog.tasks.provisioning.reap_stale_builds", queue="provisioning")
def reap_stale_builds() -> list[int]:
    return build_services.builds_reap()


@shared_task(name="catalog.tasks.provisioning.autostop_workspaces", queue="provisioning")
def autostop_workspaces() -> list[str]:
    """Stop running workspaces idle past their TTL (idempotent: a stop already queued is a 409, skipped)."""
    from ..services.errors import DomainError

    stopped = []
    now = timezone.now()
    for ws in Workspace.objects.filter(status=WorkspaceStatus.RUNNING, ttl_hours__isnull=False).select_related("owner"):
        if ws.last_activity_at and ws.last_activity_at + dt.timedelta(hours=ws.ttl_hours) <= now:
            try:
                ws_services.workspace_stop(workspace=ws, actor=ws.owner)
                stopped.append(str(ws.pk))
            except DomainError:
                continue
    return stopped


def workspace_dir(ws: Workspace) -> Path:
    return goldpath_home() / "terraform" / ws.state_key


def pg_conn_str() -> str | None:
    """The pg backend's connection string, from settings.DATABASES (None on SQLite)."""
    db = settings.DATABASES["default"]
    if not db["ENGINE"].startswith("django.db.backends.postgresql"):
        return None
    from urllib.parse import quote

    user = quote(db.get("USER") or "postgres")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    name = db["NAME"]
    from django.db import connection

    name = connection.settings_dict["NAME"]  # the test database when tests run
    return f"postgres://{user}{password}@{host}:{port}/{name}?sslmode=disable"


class _Sink:
    """Collects runner events and writes them to the build log (batched every ~100 ms) and heartbeat."""

    def __init__(self, build_id: int):
        self.build_id = build_id
        self.pending: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.last_flush = 0.0
        self.progress: float | None = None
        self.stage: str | None = None
        self.cancel = False
        self.last_beat = 0.0
        self.pgid: int | None = None

    def on_event(self, stage: str, level: str, text: str, progress: float | None = None) -> None:
        with self.lock:
            self.pending.append((stage, level, text))
            if progress is not None:
                self.progress = progress
            self.stage = stage
        if time.monotonic() - self.last_flush > 0.1:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            lines, self.pending = self.pending, []
        self.last_flush = time.monotonic()
        if lines:
            build_services.build_log(self.build_id, lines)

    def heartbeat(self, pgid: int | None = None) -> bool:
        """Called by the runner while terraform runs; returns True to ask for a cancel."""
        if pgid is not None:
            self.pgid = pgid
        now = time.monotonic()
        if now - self.last_beat >= float(goldpath_settings.BUILD_HEARTBEAT_INTERVAL_S) or pgid is not None:
            self.last_beat = now
            self.flush()
            self.cancel = build_services.build_heartbeat(
                self.build_id, progress=self.progress, stage=self.stage, pgid=pgid
            )
        return self.cancel


class _Beat(threading.Thread):
    """Heartbeat from the worker while terraform runs, whether or not terraform prints anything: records
    terraform's process group and asks the runner to cancel when a cancel was requested."""

    def __init__(self, sink: _Sink, runner: Any = None):
        super().__init__(daemon=True, name=f"heartbeat-{sink.build_id}")
        self.sink, self.runner, self.stopped = sink, runner, threading.Event()

    def run(self) -> None:
        interval = float(goldpath_settings.BUILD_HEARTBEAT_INTERVAL_S)
        canceled = False
        try:
            while not self.stopped.wait(interval):
                pgid = _runner_pgid(self.runner)
                if self.sink.heartbeat(pgid if pgid != self.sink.pgid else None) and not canceled and self.runner:
                    canceled = True
                    self.runner.cancel()
        finally:
            close_old_connections()
            from django.db import connection

            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)


def _runner_pgid(runner: Any) -> int | None:
    for attr in ("pgid", "process_group"):
        value = getattr(runner, attr, None)
        if isinstance(value, int):
            return value
    proc = getattr(runner, "process", None) or getattr(runner, "proc", None)
    pid = getattr(proc, "pid", None)
    if pid and getattr(proc, "returncode", 0) is None:
        try:
            return os.getpgid(pid)
        except ProcessLookupError:
            return None
    return None


def resolve_repository(build: WorkspaceBuild, ws: Workspace) -> Repository | None:
    """The registered repository the build's `repository` parameter names (a slug), checked again at the moment
    of use: still registered, still for the workspace's team, its address still allowed (`check_at_use`, which
    also resolves the host). None when the template takes no repository. Raises RepositoryRefused."""
    name = workspace_parameters.REPOSITORY_PARAMETER
    slug = build.parameters.get(name)
    if name not in {p["name"] for p in build.template_version.parameters} or slug in (None, ""):
        return None
    shown = str(slug)[:100]
    repository = Repository.objects.filter(slug=slug).first() if isinstance(slug, str) else None
    if repository is None:
        raise RepositoryRefused(REPOSITORY_MISSING.format(slug=shown))
    if not permissions.is_platform(ws.owner) and not repository.teams.filter(pk=ws.team_id).exists():
        raise RepositoryRefused(REPOSITORY_NOT_FOR_TEAM.format(slug=shown, team=ws.team.slug))
    # Terraform never receives a credential (var-files, state and provisioner environments are not places for
    # one): workspaces of repositories that need a credential are not supported yet and fail here, clearly.
    if repository.has_credential:
        raise RepositoryRefused(REPOSITORY_NEEDS_CREDENTIAL.format(slug=shown))
    try:
        check_at_use(repository.url)
    except ValueError as exc:
        raise RepositoryRefused(REPOSITORY_REFUSED.format(slug=shown)) from exc
    return repository


def build_classification(ws: Workspace, repository: Repository | None) -> str:
    """The workspace's stored classification, or its repository's if that has been raised since."""
    stored = ws.classification or ws.template.data_classification
    if repository is not None and DataClassification.rank(repository.data_classification) > DataClassification.rank(
        stored
    ):
        return repository.data_classification
    return stored


def _policy_recheck(build: WorkspaceBuild, ws: Workspace, classification: str | None = None) -> list[dict]:
    """Decide each tool again at the moment of use (audited), for the workspace's classification; returns the
    denials."""
    denied = []
    context = ws_services.policy_context(ws.template, classification or ws.classification)
    for item in build.tools:
        tool = AITool.objects.filter(slug=item["slug"]).first()
        if tool is None:
            denied.append({"tool": item["slug"], "reasons": [{"code": "missing", "message": "tool no longer exists"}]})
            continue
        decision = tool_use_record(ws.owner, tool, context, action=f"workspace.{build.transition}", subject=ws)
        if not decision.allowed:
            denied.append({"tool": tool.slug, "reasons": [r.as_dict() for r in decision.reasons]})
    return denied


def materialise(build: WorkspaceBuild, ws: Workspace) -> Path:
    """Write the version's files, and the workspace agent's (catalog.workspace_agent.support_files), into the
    workspace's Terraform folder (keeping `.terraform` caches)."""
    workdir = workspace_dir(ws)
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.rglob("*"):
        rel = old.relative_to(workdir)
        if rel.parts and rel.parts[0] in (".terraform", "state") or old.name == ".terraform.lock.hcl":
            continue
        if old.is_file() and old.suffix in (".tf", ".json", ".sh", ".md", ".tpl") and not old.name.endswith("tfstate"):
            old.unlink()
    for rel, text in {**build.template_version.files, **support_files()}.items():
        target = workdir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return workdir


def variable_values(build: WorkspaceBuild, ws: Workspace, repository_url: str | None = None) -> dict[str, Any]:
    """The var-file's values: declared parameters, the built-ins, and for `repository` the registered
    repository's resolved address (`resolve_repository`), never the stored slug or anything the user typed."""
    declared = {p["name"] for p in build.template_version.parameters}
    values = {k: v for k, v in build.parameters.items() if k in declared}
    param = workspace_parameters.REPOSITORY_PARAMETER
    if values.get(param) not in (None, ""):
        values[param] = repository_url or ""
    home = str(goldpath_home())
    for name, value in workspace_parameters.builtin_values(ws, build, home).items():
        if name in declared:
            values[name] = value
    if "goldpath_session" in declared:  # rotates the agent token: only for the build that runs
        values["goldpath_session"] = json.dumps(workspace_session.session_spec(ws, build))
    if "goldpath_agent_launch" in declared:
        values["goldpath_agent_launch"] = workspace_session.agent_launch(build)
    return values


@shared_task(name="catalog.tasks.provisioning.run_build", queue="provisioning", bind=True)
def run_build(self, build_id: int) -> str:
    build = build_services.build_claim(build_id, task_id=getattr(self.request, "id", "") or "")
    if build is None:
        return "skipped"
    try:
        return _execute(build)
    except Exception as exc:  # noqa: BLE001 - never leave a claimed build running
        log.exception("build %s crashed", build_id)
        build_services.build_log(build_id, [("portal", "error", f"Internal error: {exc}")])
        build_services.build_finish(build_id, status=BuildStatus.FAILED, error=f"Internal error: {exc}")
        return "failed"
    finally:
        close_old_connections()


def _refuse(build: WorkspaceBuild, sink: _Sink, stage: str, message: str, error: str | None = None) -> str:
    """End the build before Terraform changed anything: the workspace keeps its status (what ran still runs)."""
    sink.on_event(stage, "error", message)
    sink.flush()
    build_services.build_finish(build.pk, status=BuildStatus.FAILED, error=error or message, unchanged=True)
    return "failed"


def _execute(build: WorkspaceBuild) -> str:
    """Status rule: a build refused before Terraform changes anything (repository, policy, no terraform, `init`)
    leaves the workspace as it was, so a running session is never called failed; once apply/destroy has started,
    a failure means `failed` (the local sandbox's failed step has then already taken its session down)."""
    build = WorkspaceBuild.objects.select_related("template_version__template", "workspace__owner").get(pk=build.pk)
    ws = Workspace.objects.select_related("owner", "team", "template").get(pk=build.workspace_id)
    sink = _Sink(build.pk)
    try:
        repository = resolve_repository(build, ws)
    except RepositoryRefused as exc:
        if build.transition != Transition.DELETE:
            return _refuse(build, sink, "portal", str(exc))
        repository = None  # destroying clones nothing: a workspace whose repository is gone can still be deleted
        sink.on_event("portal", "info", f"{exc} Deleting the workspace without it.")
    if build.transition == Transition.START and build.tools:
        denied = _policy_recheck(build, ws, build_classification(ws, repository))
        if denied:
            text = "; ".join(f"{d['tool']}: " + ", ".join(r["message"] for r in d["reasons"]) for d in denied)
            return _refuse(
                build, sink, "policy", f"The policy denies tools at build time: {text}", f"Policy denied: {text}"
            )
    sink.on_event("portal", "info", f"Build {build.number}: {build.transition} on {build_services.hostname()}")
    from ..runners import terraform as tf

    try:
        binary = tf.find_terraform()
    except tf.TerraformNotFound as exc:
        return _refuse(build, sink, "portal", str(exc))
    workdir = materialise(build, ws)
    if build.transition != Transition.DELETE and build.tools:
        sink.on_event("portal", "info", "Preparing the workspace's tools (a first use installs their runtimes).")
        sink.flush()
    values = variable_values(build, ws, repository.url if repository else None)
    # the session spec (agent token, gateway key) reaches Terraform through its environment, never a file
    session = values.pop("goldpath_session", None)
    tf.write_var_file(workdir, values)
    conn = pg_conn_str()
    runner = tf.TerraformRunner(
        workdir,
        binary=binary,
        backend=("pg", {"conn_str": conn, "schema_name": ws.state_key}) if conn else ("local", {}),
        on_event=sink.on_event,
        heartbeat=sink.heartbeat,
        lock_timeout_s=goldpath_settings.TERRAFORM_LOCK_TIMEOUT_S,
    )
    if session is not None:
        runner.env["TF_VAR_goldpath_session"] = session
    beat = _Beat(sink, runner)
    beat.start()
    changing = False  # becomes True once apply/destroy may have changed something
    try:
        result = runner.init()
        if result.ok:
            changing = True
            if build.transition == Transition.DELETE:
                result = runner.destroy()
            else:
                result = runner.apply()
        outputs = None
        if result.ok and build.transition != Transition.DELETE:
            outputs = mask_outputs(runner.outputs())
    finally:
        beat.stop()
    sink.flush()
    if sink.cancel and not result.ok:
        build_services.build_finish(
            build.pk, status=BuildStatus.CANCELED, error="Canceled while running.", unchanged=not changing
        )
        return "canceled"
    if not result.ok:
        build_services.build_finish(
            build.pk, status=BuildStatus.FAILED, error=result.error or "terraform failed", unchanged=not changing
        )
        return "failed"
    if build.transition == Transition.DELETE:
        shutil.rmtree(workdir, ignore_errors=True)
    build_services.build_finish(build.pk, status=BuildStatus.SUCCEEDED, outputs=outputs or {})
    return "succeeded"
