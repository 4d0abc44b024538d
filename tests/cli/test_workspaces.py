"""Workspaces from the terminal through a real Celery worker and real Terraform: create --wait follows the
build log to the end, stop/start/delete, a failing build's exit code, and `shell`'s message."""

from __future__ import annotations

import pytest

from catalog.models import Workspace
from catalog.services import templates as template_services
from tests.conftest import require_binary
from tests.tf.templates import ECHO
from tests.workspace_helpers import sample_repository

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def echo(people):
    """The `echo` template (terraform_data + local-exec), published and active; the `sample` repository."""
    require_binary("terraform", "Terraform")
    sample_repository(people)
    template = template_services.template_create(actor=people["bob"], slug="echo", name="Echo")
    version, _ = template_services.template_version_create(template=template, actor=people["bob"], files=ECHO)
    version = template_services.validate_and_publish(version.pk)
    assert version.status == "published", version.diagnostics
    template_services.template_version_activate(version=version, actor=people["bob"])
    return template


def test_create_wait_follows_the_build_then_stop_start_delete(goldpath, celery_worker, people, echo):
    goldpath.login("alice")
    result = goldpath(
        "workspaces", "create", "--template", "echo", "--name", "dev",
        "--param", "repository=sample", "--param", "display_name=Hello there", "--param", "sleep_s=1", "--wait",
        timeout=300,
    )  # fmt: skip
    assert result.code == 0, result
    workspace = Workspace.objects.get(name="dev", owner=people["alice"])
    assert workspace.status == "running"
    assert workspace.parameters["sleep_s"] == 1  # `--param` values typed as the template declares them
    assert "Created workspace dev" in result.err
    assert "apply |" in result.out  # the build's log lines, by stage
    assert "Workspace dev is running (start build #1 took" in result.out
    assert f"path = {workspace.outputs['path']}" in result.out and "s3cr3t" not in result.out

    listed = goldpath("workspaces", "list", "--json")
    assert [(w["name"], w["status"]) for w in listed.json] == [("dev", "running")]
    table = goldpath("workspaces", "list")
    assert "dev" in table.out and "echo v1" in table.out and "start succeeded" in table.out

    stop = goldpath("workspaces", "stop", "dev", "--wait", timeout=300)
    assert stop.code == 0, stop
    assert Workspace.objects.get(pk=workspace.pk).status == "stopped"
    start = goldpath("workspaces", "start", str(workspace.pk)[:8], "--wait", "--json", timeout=300)
    assert start.code == 0, start
    assert start.json["workspace"]["status"] == "running" and start.json["build"]["status"] == "succeeded"
    assert start.json["build"]["transition"] == "start" and start.json["build"]["number"] == 3

    refused = goldpath("workspaces", "delete", "dev")
    assert refused.code == 2 and "--yes" in refused.err
    delete = goldpath("workspaces", "delete", "dev", "--yes", "--wait", timeout=300)
    assert delete.code == 0, delete
    assert Workspace.objects.get(pk=workspace.pk).status == "deleted"
    assert goldpath("workspaces", "list", "--json").json == []


def test_a_failing_build_exits_non_zero_with_its_error(goldpath, celery_worker, people, echo):
    goldpath.login("alice")
    result = goldpath(
        "workspaces", "create", "-t", "echo", "-n", "bad", "-p", "repository=sample", "-p", "sleep_s=-1", "--wait",
        timeout=300,
    )  # fmt: skip
    assert result.code == 1, result
    assert "Error: Build #1 (start) failed:" in result.err
    workspace = Workspace.objects.get(name="bad")
    assert workspace.status == "failed"
    assert any(line.level == "error" for line in workspace.builds.get().log_lines.all())

    shell = goldpath("shell", "bad")
    assert shell.code == 2
    assert "Workspace bad is not running (failed)" in shell.err


def test_parameters_and_names_are_checked_before_anything_starts(goldpath, people, echo):
    goldpath.login("alice")
    typed = goldpath("workspaces", "create", "-t", "echo", "-p", "repository=sample", "-p", "sleep_s=soon")
    assert typed.code == 1 and "sleep_s is a number" in typed.err
    shape = goldpath("workspaces", "create", "-t", "echo", "-p", "repository")
    assert shape.code == 1 and "name=value" in shape.err
    unknown = goldpath("workspaces", "create", "-t", "nope")
    assert unknown.code == 1 and "No template 'nope'" in unknown.err
    undeclared = goldpath("workspaces", "create", "-t", "echo", "-p", "repository=sample", "-p", "colour=red")
    assert undeclared.code == 1 and "colour" in undeclared.err
    assert not Workspace.objects.exists()
    missing = goldpath("workspaces", "stop", "nothing-here")
    assert missing.code == 1 and "No workspace named 'nothing-here'" in missing.err
