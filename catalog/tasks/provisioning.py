"""Provisioning tasks (queue `provisioning`): publish template versions, run workspace builds, reap, autostop.

`run_build(build_id)` claims the pending build under a row lock (a redelivered message finds it no
longer pending and does nothing), takes the policy decision again for each tool at the moment of use,
materialises the template version from the database, writes the variables to a JSON var-file, runs
Terraform with heartbeats, streams its events to the build log, and records outputs and the final status.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from ..conf import goldpath_settings
from ..models import AITool, BuildStatus, Transition, Workspace, WorkspaceBuild, WorkspaceStatus
from ..services import builds as build_services
from ..services import templates as template_services
from ..services import workspaces as ws_services
from ..services.access import tool_use_record

log = logging.getLogger(__name__)


@shared_task(name="catalog.tasks.provisioning.publish_version")
def publish_version(version_id: int, actor_id: int | None = None) -> str:
    version = template_services.validate_and_publish(version_id, actor_id=actor_id)
    return version.status if version else "missing"


@shared_task(name="catalog.tasks.provisioning.reap_stale_builds")
def reap_stale_builds() -> list[int]:
    return build_services.builds_reap()


@shared_task(name="catalog.tasks.provisioning.autostop_workspaces")
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
    return Path(settings.GOLDPATH_HOME) / "terraform" / ws.state_key


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


def _policy_recheck(build: WorkspaceBuild, ws: Workspace) -> list[dict]:
    """Decide each tool again at the moment of use (audited); returns the denials."""
    denied = []
    context = ws_services.policy_context(ws.template)
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
    """Write the version's files into the workspace's Terraform folder (keeping `.terraform` caches)."""
    workdir = workspace_dir(ws)
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.rglob("*"):
        rel = old.relative_to(workdir)
        if rel.parts and rel.parts[0] in (".terraform", "state") or old.name == ".terraform.lock.hcl":
            continue
        if old.is_file() and old.suffix in (".tf", ".json", ".sh", ".md", ".tpl") and not old.name.endswith("tfstate"):
            old.unlink()
    for rel, text in build.template_version.files.items():
        target = workdir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return workdir


def variable_values(build: WorkspaceBuild, ws: Workspace) -> dict[str, Any]:
    declared = {p["name"] for p in build.template_version.parameters}
    values = {k: v for k, v in build.parameters.items() if k in declared}
    home = str(Path(settings.GOLDPATH_HOME))
    for name, value in ws_services.builtin_values(ws, build, home).items():
        if name in declared:
            values[name] = value
    return values


@shared_task(name="catalog.tasks.provisioning.run_build", bind=True)
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


def _execute(build: WorkspaceBuild) -> str:
    build = WorkspaceBuild.objects.select_related("template_version__template", "workspace__owner").get(pk=build.pk)
    ws = Workspace.objects.select_related("owner", "team", "template").get(pk=build.workspace_id)
    sink = _Sink(build.pk)
    if build.transition == Transition.START and build.tools:
        denied = _policy_recheck(build, ws)
        if denied:
            text = "; ".join(f"{d['tool']}: " + ", ".join(r["message"] for r in d["reasons"]) for d in denied)
            sink.on_event("policy", "error", f"The policy denies tools at build time: {text}")
            sink.flush()
            build_services.build_finish(build.pk, status=BuildStatus.FAILED, error=f"Policy denied: {text}")
            return "failed"
    sink.on_event("portal", "info", f"Build {build.number}: {build.transition} on {build_services.hostname()}")
    from ..runners import terraform as tf

    try:
        binary = tf.find_terraform()
    except tf.TerraformNotFound as exc:
        sink.on_event("portal", "error", str(exc))
        sink.flush()
        build_services.build_finish(build.pk, status=BuildStatus.FAILED, error=str(exc))
        return "failed"
    workdir = materialise(build, ws)
    tf.write_var_file(workdir, variable_values(build, ws))
    conn = pg_conn_str()
    runner = tf.TerraformRunner(
        workdir,
        binary=binary,
        backend=("pg", {"conn_str": conn, "schema_name": ws.state_key}) if conn else ("local", {}),
        on_event=sink.on_event,
        heartbeat=sink.heartbeat,
        lock_timeout_s=goldpath_settings.TERRAFORM_LOCK_TIMEOUT_S,
    )
    result = runner.init()
    if result.ok:
        if build.transition == Transition.DELETE:
            result = runner.destroy()
        else:
            result = runner.apply()
    outputs = None
    if result.ok and build.transition != Transition.DELETE:
        outputs = build_services.mask_outputs(runner.outputs())
    sink.flush()
    if sink.cancel and not result.ok:
        build_services.build_finish(build.pk, status=BuildStatus.CANCELED, error="Canceled while running.")
        return "canceled"
    if not result.ok:
        build_services.build_finish(build.pk, status=BuildStatus.FAILED, error=result.error or "terraform failed")
        return "failed"
    if build.transition == Transition.DELETE:
        shutil.rmtree(workdir, ignore_errors=True)
    build_services.build_finish(build.pk, status=BuildStatus.SUCCEEDED, outputs=outputs or {})
    return "succeeded"
