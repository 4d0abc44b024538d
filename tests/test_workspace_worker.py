"""Workspaces through a real Celery worker and real Terraform: create -> running, stop, start, delete;
values arrive literally; terraform errors and a missing binary fail the build with a clear message;
publishing validates; SIGKILL of the worker mid-apply is reaped and the next start succeeds."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from catalog.conf import goldpath_home
from catalog.models import TemplateVersion, Workspace, WorkspaceBuild
from catalog.services import builds as build_services
from catalog.services import templates as template_services
from catalog.services import workspaces as ws_services
from tests.conftest import WorkerProcess, wait_for
from tests.tf.templates import BROKEN, ECHO
from tests.workspace_helpers import sample_repository

INJECTION = 'x"; rm -rf ~ # $(id) ${file("/etc/passwd")} `id`'


def group_alive(pgid: int) -> bool:
    """True while a live (not zombie) process of the group exists; PID 1 may reap re-parented ones late."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def publish(files, slug="echo", actor=None, people=None):
    if people is not None:
        sample_repository(people)  # the workspaces below name it by slug
    template = template_services.template_create(actor=actor, slug=slug, name=slug.title())
    version, _ = template_services.template_version_create(template=template, actor=actor, files=files)
    ok, parameters, diagnostics = template_services.validate_files(files)
    assert ok, diagnostics
    template_services.validate_and_publish(version.pk)
    version.refresh_from_db()
    template_services.template_version_activate(version=version, actor=actor)
    template.refresh_from_db()
    return template


def settled(ws_id, timeout=60):
    def done():
        # builds first, then the workspace: a build that finishes between the two reads has already set
        # the workspace's status in the same transaction
        if WorkspaceBuild.objects.filter(workspace_id=ws_id, status__in=["pending", "running"]).exists():
            return None
        return Workspace.objects.get(pk=ws_id)

    return wait_for(done, timeout, message="the build to finish")


def latest(ws):
    return ws.builds.order_by("-number").first()


@pytest.mark.integration
def test_create_stop_start_delete_through_the_worker(celery_worker, people, teams, api):
    template = publish(ECHO, people=people)
    client = api(people["alice"])
    r = client.post(
        "/api/v1/workspaces/",
        {"name": "dev", "template": "echo", "parameters": {"repository": "sample", "display_name": INJECTION}},
        format="json",
    )
    assert r.status_code == 201, r.json()
    ws = settled(r.json()["id"])
    build = latest(ws)
    assert ws.status == "running", (build.error, list(build.log_lines.values_list("text", flat=True)))
    folder = goldpath_home() / "ws-test" / str(ws.pk)
    assert (folder / "WORKSPACE.md").read_text().splitlines()[0] == f"# {INJECTION}"
    assert ws.outputs["path"] == str(folder) and ws.outputs["secret"] == "********"
    assert build.log_lines.filter(stage="apply").exists() and build.progress == 1.0
    logs = client.get(f"/api/v1/builds/{build.pk}/logs/?after=0").json()
    assert logs["lines"] and "s3cr3t" not in str(logs)
    assert client.post(f"/api/v1/workspaces/{ws.pk}/stop/").status_code == 202
    ws = settled(ws.pk)
    assert ws.status == "stopped" and (folder / "state").read_text().strip() == "stop"
    assert client.post(f"/api/v1/workspaces/{ws.pk}/start/").status_code == 202
    ws = settled(ws.pk)
    assert ws.status == "running" and (folder / "state").read_text().strip() == "start"
    assert client.delete(f"/api/v1/workspaces/{ws.pk}/").status_code == 202
    ws = settled(ws.pk)
    assert ws.status == "deleted" and not folder.exists()
    assert template.pk


@pytest.mark.integration
def test_terraform_error_fails_the_build_with_the_diagnostic(celery_worker, people, teams):
    template = publish(ECHO, people=people)
    ws = ws_services.workspace_create(
        actor=people["alice"], name="bad", template=template, parameters={"repository": "sample", "sleep_s": -1}
    )
    ws = settled(ws.pk)
    build = latest(ws)
    assert ws.status == "failed" and build.status == "failed"
    assert "local-exec" in build.error or "sleep" in build.error
    assert build.log_lines.filter(level="error").exists()


@pytest.mark.integration
def test_publish_keeps_a_broken_version_draft_with_diagnostics(celery_worker, people, teams, api):
    template = template_services.template_create(actor=people["bob"], slug="broken", name="Broken")
    version, _ = template_services.template_version_create(template=template, actor=people["bob"], files=BROKEN)
    assert api(people["bob"]).post(f"/api/v1/templates/broken/versions/{version.number}/publish/").status_code == 202
    wait_for(lambda: TemplateVersion.objects.get(pk=version.pk).diagnostics, 60, message="diagnostics")
    version.refresh_from_db()
    assert version.status == "draft" and "missing" in version.diagnostics


def _tar(members: dict[str, bytes], link: str | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo("evil")
            info.type = tarfile.SYMTYPE
            info.linkname = link
            tar.addfile(info)
    buf.seek(0)
    buf.name = "t.tar.gz"
    return buf


@pytest.mark.django_db
def test_upload_refuses_unsafe_archives_and_accepts_a_good_one(people, teams, api):
    template_services.template_create(actor=people["bob"], slug="up", name="Up")
    client = api(people["bob"])
    url = "/api/v1/templates/up/versions/"
    for bad in (_tar({"/etc/x.tf": b"x"}), _tar({"../x.tf": b"x"}), _tar({"main.tf": b"#"}, link="/etc/passwd")):
        r = client.post(url, {"archive": bad}, format="multipart")
        assert r.status_code == 400, r.content
        assert "archive" in r.json()
    assert not TemplateVersion.objects.exists()
    r = client.post(
        url, {"archive": _tar({k: v.encode() for k, v in ECHO.items()}), "changelog": "v1"}, format="multipart"
    )
    assert r.status_code == 201, r.content
    assert sorted(r.json()["files"]) == ["main.tf", "variables.tf"]


@pytest.mark.integration
def test_missing_binary_is_a_clear_error(transactional_db, people, teams, monkeypatch):
    template = publish(ECHO, people=people)
    monkeypatch.setenv("GOLDPATH_TERRAFORM_BIN", "/nonexistent/terraform")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    worker = WorkerProcess().start()
    try:
        ws = ws_services.workspace_create(
            actor=people["alice"], name="nobin", template=template, parameters={"repository": "sample"}
        )
        ws = settled(ws.pk)
    finally:
        worker.stop()
    build = latest(ws)
    assert build.status == "failed" and "terraform" in build.error.lower()
    assert "Traceback" not in build.error


@pytest.mark.integration
def test_sigkill_mid_apply_is_reaped_and_the_next_start_succeeds(transactional_db, people, teams):
    template = publish(ECHO, people=people)
    worker = WorkerProcess().start()
    ws = ws_services.workspace_create(
        actor=people["alice"], name="slow", template=template, parameters={"repository": "sample", "sleep_s": 30}
    )
    wait_for(lambda: WorkspaceBuild.objects.filter(workspace=ws, status="running", pgid__isnull=False).exists(), 30)
    wait_for(lambda: latest(Workspace.objects.get(pk=ws.pk)).log_lines.filter(stage="apply").exists(), 30)
    build = latest(ws)
    pgid = WorkspaceBuild.objects.get(pk=build.pk).pgid
    worker.kill()  # SIGKILL the worker's whole process group; terraform has its own and runs on
    os.killpg(pgid, 0)  # still alive: only the reaper may take it down
    bound = 3
    worker = WorkerProcess().start()
    ready = time.monotonic()  # the bound below counts from a ready worker, never its start-up
    try:
        wait_for(lambda: build_services.builds_reap(timeout_s=bound), bound + 10, interval=0.5, message="reaped")
        assert time.monotonic() - ready < bound + 10
        build.refresh_from_db()
        assert build.status == "failed" and "heartbeat" in build.error
        wait_for(lambda: not group_alive(pgid), 10, message="terraform's process group to be gone")
        Workspace.objects.filter(pk=ws.pk).update(parameters={"repository": "sample", "sleep_s": 0})
        ws.refresh_from_db()
        ws_services.workspace_start(workspace=ws, actor=people["alice"])
        ws = settled(ws.pk, 90)
        assert ws.status == "running", latest(ws).error
        folder = goldpath_home() / "ws-test" / str(ws.pk)
        assert (folder / "WORKSPACE.md").exists()
        ws_services.workspace_delete(workspace=ws, actor=people["alice"])
        ws = settled(ws.pk)
        assert ws.status == "deleted" and not folder.exists()
    finally:
        worker.stop()
