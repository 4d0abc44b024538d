"""Provisioning tasks (queue `provisioning`): template versions, workspace builds, reaping and autostop.

They validate and publish template versions, run workspace builds, reap and autostop.

Tasks take ids and call a service or the build runner (catalog.workspaces_build, which does the Terraform run
on catalog.jobs); a redelivered message finds its build no longer pending and does nothing.
"""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from .. import workspaces_build
from ..models import Workspace, WorkspaceStatus
from ..services import builds as build_services
from ..services import templates as template_services
from ..services import workspaces as ws_services
from ..services.errors import DomainError

# the build runner's parts, where callers and tests have always found them
from ..workspaces_build import (  # noqa: F401
    REPOSITORY_MISSING,
    REPOSITORY_NEEDS_CREDENTIAL,
    REPOSITORY_NOT_FOR_TEAM,
    REPOSITORY_REFUSED,
    RepositoryRefused,
    build_classification,
    materialise,
    pg_conn_str,
    resolve_repository,
    variable_values,
    workspace_dir,
)
from ..workspaces_build import execute_build as _execute  # noqa: F401


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


@shared_task(name="catalog.tasks.provisioning.run_build", queue="provisioning", bind=True)
def run_build(self, build_id: int) -> str:
    return workspaces_build.run_build(build_id, task_id=getattr(self.request, "id", "") or "")
