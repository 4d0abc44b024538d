"""Build lifecycle without Terraform: claim under a lock (a redelivery is harmless), the reaper fails
silent builds, kills their process group and releases the workspace, the policy is taken again in the worker."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess

import pytest
from django.db import transaction
from django.utils import timezone

from catalog.models import AccessGrant, AuditEvent, WorkspaceBuild
from catalog.services import access
from catalog.services import workspaces as ws_services
from catalog.services.builds import build_claim, build_finish, build_heartbeat, builds_reap
from tests.conftest import wait_for
from tests.workspace_helpers import granted_tools, published_template, sample_repository

PARAMS = {"repository": "sample"}


def make_ws(people, template, **kw):
    sample_repository(people)
    return ws_services.workspace_create(
        actor=people["alice"], name=kw.pop("name", "dev"), template=template, parameters=PARAMS, **kw
    )


@pytest.mark.django_db
def test_claim_is_idempotent_and_finish_ignores_a_reaped_build(people, teams):
    template = published_template()
    ws = make_ws(people, template)
    build = ws.builds.get()
    assert build_claim(build.pk, task_id="t1") is not None
    assert build_claim(build.pk, task_id="t2") is None  # redelivered message: nothing happens
    build.refresh_from_db()
    assert build.status == "running" and build.task_id == "t1"
    ws.refresh_from_db()
    assert ws.status == "starting"
    WorkspaceBuild.objects.filter(pk=build.pk).update(heartbeat_at=timezone.now() - dt.timedelta(seconds=120))
    assert builds_reap(timeout_s=60) == [build.pk]
    assert build_finish(build.pk, status="succeeded", outputs={}) is None  # the late worker changes nothing
    build.refresh_from_db()
    assert build.status == "failed" and "no heartbeat" in build.error
    assert build_heartbeat(build.pk) is True  # a late worker is told to stop


@pytest.mark.django_db
def test_reaper_kills_the_process_group_and_releases_the_workspace(people, teams, api):
    template = published_template()
    ws = make_ws(people, template)
    build = ws.builds.get()
    build_claim(build.pk)
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        build_heartbeat(build.pk, pgid=os.getpgid(proc.pid))
        WorkspaceBuild.objects.filter(pk=build.pk).update(heartbeat_at=timezone.now() - dt.timedelta(seconds=5))
        assert builds_reap(timeout_s=60) == []  # still within the bound
        assert builds_reap(timeout_s=2) == [build.pk]
        proc.wait(5)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    build.refresh_from_db()
    ws.refresh_from_db()
    assert build.status == "failed" and build.pgid is None and ws.status == "failed"
    assert build.log_lines.last().stage == "reaper"
    assert AuditEvent.objects.filter(verb="build.reaped", payload__killed_process_group=True).exists()
    r = api(people["alice"]).post(f"/api/v1/workspaces/{ws.pk}/start/")
    assert r.status_code == 202  # released: the next start is accepted


@pytest.mark.integration
def test_policy_is_taken_again_in_the_worker(celery_worker, people, teams):
    tools = granted_tools(people, teams)
    template = published_template()
    with transaction.atomic():
        ws = make_ws(people, template, tools=["claude-code"])
        grant = AccessGrant.objects.get(tool=tools["claude-code"], team=teams["payments"])
        access.grant_revoke(grant=grant, actor=people["bob"], reason="pulled")
    build = ws.builds.get()
    wait_for(lambda: WorkspaceBuild.objects.get(pk=build.pk).status == "failed", 30, message="build failed")
    build.refresh_from_db()
    assert "Policy denied" in build.error and "claude-code" in build.error
    assert AuditEvent.objects.filter(verb="tool.use_denied", payload__action="workspace.start").exists()
    ws.refresh_from_db()
    assert ws.status == "failed"


@pytest.mark.django_db
def test_autostop_stops_running_workspaces_past_their_ttl(people, teams):
    from catalog.models import Workspace
    from catalog.tasks.provisioning import autostop_workspaces

    template = published_template()
    idle, busy = (
        make_ws(people, template, name="idle", ttl_hours=1),
        make_ws(people, template, name="busy", ttl_hours=1),
    )
    WorkspaceBuild.objects.update(status="succeeded")
    Workspace.objects.update(status="running")
    Workspace.objects.filter(pk=idle.pk).update(last_activity_at=timezone.now() - dt.timedelta(hours=2))
    assert autostop_workspaces() == [str(idle.pk)]
    idle.refresh_from_db()
    busy.refresh_from_db()
    assert idle.status == "stopping" and idle.builds.filter(transition="stop", status="pending").exists()
    assert busy.status == "running"
    assert autostop_workspaces() == []  # idempotent: the stop is already queued
