"""The Terraform run of one workspace build, on the worker (beside catalog.agents.execution for agent runs).

`run_build(build_id, task_id)` claims the pending build (catalog.services.builds, on catalog.jobs.lifecycle; a
redelivered message finds it no longer pending and does nothing), takes the policy decision again for each tool
at the moment of use, materialises the template version from the database, writes the variables to a JSON
var-file, runs Terraform with heartbeats (catalog.jobs.worker), streams its events to the build log, and records
outputs and the final status.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import close_old_connections, connection

from . import permissions, workspace_session
from .conf import goldpath_home, goldpath_settings
from .jobs.worker import HeartbeatThread, JobLog
from .masking import mask_outputs
from .models import AITool, BuildStatus, DataClassification, Repository, Transition, Workspace, WorkspaceBuild
from .repository_urls import check_at_use
from .runners import terraform as tf
from .services import builds as build_services
from .services import workspace_parameters, workspace_rules
from .services.access import tool_use_record
from .workspace_agent import support_files

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


def workspace_dir(ws: Workspace) -> Path:
    return goldpath_home() / "terraform" / ws.state_key


def pg_conn_str() -> str | None:
    """The pg backend's connection string, from settings.DATABASES (None on SQLite)."""
    db = settings.DATABASES["default"]
    if not db["ENGINE"].startswith("django.db.backends.postgresql"):
        return None
    user = quote(db.get("USER") or "postgres")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    name = db["NAME"]
    name = connection.settings_dict["NAME"]  # the test database when tests run
    return f"postgres://{user}{password}@{host}:{port}/{name}?sslmode=disable"


class BuildSink(JobLog):
    """Terraform's events as build log lines (batched every ~100 ms) and the build's throttled heartbeat, which
    carries the last progress and stage and terraform's process group."""

    def __init__(self, build_id: int):
        super().__init__(lambda lines: build_services.build_log(build_id, lines), flush_every_s=0.1)
        self.build_id = build_id
        self.progress: float | None = None
        self.stage: str | None = None
        self.cancel = False
        self.last_beat = 0.0
        self.pgid: int | None = None

    def on_event(self, stage: str, level: str, text: str, progress: float | None = None) -> None:
        with self.lock:
            if progress is not None:
                self.progress = progress
            self.stage = stage
        self.add(stage, level, text)

    def heartbeat(self, pgid: int | None = None) -> bool:
        """Called by the runner and the heartbeat thread while terraform runs; returns True to ask for a cancel."""
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
    context = workspace_rules.policy_context(ws.template, classification or ws.classification)
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


def run_build(build_id: int, *, task_id: str = "") -> str:
    """Claim the build and run it to its end; never leaves a claimed build running. Returns its outcome."""
    build = build_services.build_claim(build_id, task_id=task_id)
    if build is None:
        return "skipped"
    try:
        return execute_build(build)
    except Exception as exc:  # noqa: BLE001 - never leave a claimed build running
        log.exception("build %s crashed", build_id)
        build_services.build_log(build_id, [("portal", "error", f"Internal error: {exc}")])
        build_services.build_finish(build_id, status=BuildStatus.FAILED, error=f"Internal error: {exc}")
        return "failed"
    finally:
        close_old_connections()


def _refuse(build: WorkspaceBuild, sink: BuildSink, stage: str, message: str, error: str | None = None) -> str:
    """End the build before Terraform changed anything: the workspace keeps its status (what ran still runs)."""
    sink.on_event(stage, "error", message)
    sink.flush()
    build_services.build_finish(build.pk, status=BuildStatus.FAILED, error=error or message, unchanged=True)
    return "failed"


def execute_build(build: WorkspaceBuild) -> str:
    """Status rule: a build refused before Terraform changes anything (repository, policy, no terraform, `init`)
    leaves the workspace as it was, so a running session is never called failed; once apply/destroy has started,
    a failure means `failed` (the local sandbox's failed step has then already taken its session down)."""
    build = WorkspaceBuild.objects.select_related("template_version__template", "workspace__owner").get(pk=build.pk)
    ws = Workspace.objects.select_related("owner", "team", "template").get(pk=build.workspace_id)
    sink = BuildSink(build.pk)
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
    beat = HeartbeatThread(
        sink.heartbeat,
        interval=float(goldpath_settings.BUILD_HEARTBEAT_INTERVAL_S),
        runner=runner,
        name=f"heartbeat-{build.pk}",
    )
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
