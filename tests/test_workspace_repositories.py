"""Workspaces name a registered repository by slug, never a free path or URL.

The attacks: another team's repository, a path on the worker, file:// and a service on the worker's loopback
(SSRF) given as the `repository` parameter; a repository row whose address stopped being allowed; hooks and
fsmonitor commands a repository or a checkout carries. The workspace's data classification is the higher of
the template's and the repository's, and the policy decides the tools for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from catalog.conf import goldpath_home
from catalog.models import AuditEvent, Repository, Workspace, WorkspaceBuild
from catalog.runners import terraform as tf
from catalog.services import workspaces as ws_services
from catalog.services.errors import InvalidInput, NotPermitted
from catalog.services.repositories import repository_delete, repository_update
from catalog.tasks import provisioning
from catalog.tasks.provisioning import REPOSITORY_MISSING, REPOSITORY_NEEDS_CREDENTIAL, REPOSITORY_REFUSED
from tests.agent_helpers import git, make_repo, register
from tests.factories import ToolFactory
from tests.tf.templates import session_values
from tests.workspace_helpers import granted_tools, publish_local_sandbox, published_template, sample_repository, settled

URL = "/api/v1/workspaces/"
GOLDEN = Path(__file__).resolve().parent.parent / "catalog" / "golden_paths"


def counts() -> tuple[int, int, int]:
    return (
        Workspace.objects.count(),
        WorkspaceBuild.objects.count(),
        AuditEvent.objects.filter(verb__startswith="workspace.").count(),
    )


def body(repository, **over):
    return {"name": "dev", "template": "sandbox", "parameters": {"repository": repository}, "tools": [], **over}


@pytest.fixture
def world(people, teams):
    tools = granted_tools(people, teams)
    template = published_template()
    return {
        "tools": tools,
        "template": template,
        "mine": sample_repository(people),
        "theirs": sample_repository(people, slug="search-svc", teams=("search",)),
    }


# --- the parameter is a registered slug, usable by the actor and the workspace's team ---------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value",
    ["search-svc", "PATH", "/tmp", "file:///etc", "http://127.0.0.1:6379/x", "https://127.0.0.1:6379/x", "../x"],
)
def test_a_repository_that_is_not_a_registered_slug_of_the_team_is_a_400_and_nothing_is_created(
    world, people, api, value
):
    if value == "PATH":
        value = world["mine"].url  # the registered repository's own path is still not its slug
    before = counts()
    r = api(people["alice"]).post(URL, body(value), format="json")
    assert r.status_code == 400, r.content
    assert list(r.json()["errors"]["parameters"]) == ["repository"]
    assert counts() == before
    assert not AuditEvent.objects.filter(verb="workspace.created").exists()
    refusal = AuditEvent.objects.filter(verb="repository.use_denied").latest("id")  # the refusal is audited
    assert refusal.actor_repr == "alice" and refusal.payload == {"repository": value, "for": "workspace"}


@pytest.mark.django_db
def test_the_message_is_the_same_for_another_teams_repository_and_an_unknown_one(world, people, api):
    client = api(people["alice"])
    theirs = client.post(URL, body("search-svc"), format="json").json()["errors"]["parameters"]["repository"]
    unknown = client.post(URL, body("no-such-repo"), format="json").json()["errors"]["parameters"]["repository"]
    assert theirs == ["No repository search-svc is registered for your teams."]
    assert unknown == ["No repository no-such-repo is registered for your teams."]


@pytest.mark.django_db
def test_a_member_of_two_teams_may_not_use_one_teams_repository_for_the_other(world, people, teams):
    people["alice"].groups.add(teams["search"].group)
    before = counts()
    with pytest.raises(InvalidInput) as exc:
        ws_services.workspace_create(
            actor=people["alice"],
            name="dev",
            template=world["template"],
            parameters={"repository": "search-svc"},
            team=teams["payments"],
        )
    assert exc.value.errors == {
        "parameters": {"repository": ["Repository search-svc is not registered for team payments."]}
    }
    assert counts() == before


@pytest.mark.django_db
def test_the_slug_is_stored_and_a_platform_engineer_may_use_any_teams_repository(world, people, api):
    r = api(people["alice"]).post(URL, body("sample"), format="json")
    assert r.status_code == 201, r.content
    assert r.json()["parameters"]["repository"] == "sample"
    assert Workspace.objects.get(pk=r.json()["id"]).parameters["repository"] == "sample"
    r = api(people["bob"]).post(URL, body("search-svc"), format="json")  # bob's team is platform
    assert r.status_code == 201, r.content
    assert r.json()["team"] == "platform"


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["search-svc", "/tmp", "file:///etc", "http://127.0.0.1:6379/x"])
def test_update_to_a_repository_that_is_not_usable_is_a_400_and_changes_nothing(world, people, api, value):
    client = api(people["alice"])
    ws = client.post(URL, body("sample"), format="json").json()
    WorkspaceBuild.objects.update(status="succeeded")
    Workspace.objects.filter(pk=ws["id"]).update(status="running")
    before = counts()
    r = client.post(f"{URL}{ws['id']}/update/", {"parameters": {"repository": value}}, format="json")
    assert r.status_code == 400, r.content
    assert "repository" in r.json()["errors"]["parameters"]
    assert counts() == before
    assert Workspace.objects.get(pk=ws["id"]).parameters["repository"] == "sample"


@pytest.mark.django_db
def test_the_page_offers_a_picker_and_refuses_a_free_path(world, people, client):
    client.force_login(people["alice"])
    html = client.get("/golden-paths/sandbox/new-workspace/").content.decode()
    assert '<select id="id_repository" name="repository" required>' in html
    assert 'value="sample"' in html and 'value="search-svc"' not in html  # only her teams' repositories
    before = counts()
    r = client.post("/golden-paths/sandbox/new-workspace/", {"name": "dev", "repository": "file:///etc"})
    assert r.status_code == 400
    assert b"No repository file:///etc is registered for your teams." in r.content
    assert counts() == before
    r = client.post("/golden-paths/sandbox/new-workspace/", {"name": "dev", "repository": "sample"})
    assert r.status_code == 302
    assert Workspace.objects.get().parameters["repository"] == "sample"


# --- classification -----------------------------------------------------------------------------------------


@pytest.fixture
def classified(world, people, teams):
    from catalog.services import access

    internal_only = ToolFactory(
        slug="internal-only", name="Internal only", status="approved", max_data_classification="internal"
    )
    access.grant_create(actor=people["bob"], team=teams["payments"], tool=internal_only)
    sample_repository(people, slug="secret", classification="confidential")
    sample_repository(people, slug="open", classification="public")
    return world


@pytest.mark.django_db
def test_the_workspace_takes_the_higher_classification(classified, people, api):
    client = api(people["alice"])
    r = client.post(URL, body("secret", tools=["claude-code"]), format="json")
    assert r.status_code == 201, r.content
    assert r.json()["classification"] == "confidential"
    event = AuditEvent.objects.get(verb="workspace.created", target_id=r.json()["id"])
    assert event.payload["classification"] == "confidential"
    r = client.post(URL, body("open", name="dev2"), format="json")
    assert r.status_code == 201, r.content
    assert r.json()["classification"] == "internal"  # the template's, which is higher than public


@pytest.mark.django_db
def test_a_tool_not_cleared_for_the_repositorys_classification_is_refused(classified, people, api):
    client = api(people["alice"])
    assert client.post(URL, body("sample", tools=["internal-only"]), format="json").status_code == 201
    before = counts()
    r = client.post(URL, body("secret", name="dev2", tools=["internal-only"]), format="json")
    assert r.status_code == 403, r.content
    assert r.json()["reasons"][0]["tool"] == "internal-only"
    assert "classification_above_tool" in [x["code"] for x in r.json()["reasons"][0]["reasons"]]
    assert counts() == before


@pytest.mark.django_db
def test_updating_to_a_higher_classified_repository_decides_the_tools_again(classified, people):
    ws = ws_services.workspace_create(
        actor=people["alice"],
        name="dev",
        template=classified["template"],
        parameters={"repository": "sample"},
        tools=["internal-only"],
    )
    WorkspaceBuild.objects.update(status="succeeded")
    Workspace.objects.filter(pk=ws.pk).update(status="running")
    ws.refresh_from_db()
    before = counts()
    with pytest.raises(NotPermitted):
        ws_services.workspace_update(workspace=ws, actor=people["alice"], parameters={"repository": "secret"})
    assert counts() == before
    ws.refresh_from_db()
    assert ws.parameters["repository"] == "sample" and ws.classification == "internal"


# --- build time, without terraform: the task's checks come first ---------------------------------------------


def _run_in_process(build: WorkspaceBuild) -> WorkspaceBuild:
    """Claim the build and run the task's body here, inside the test's transaction (the broker path is covered
    by the worker tests below)."""
    from catalog.services.builds import build_claim

    assert provisioning._execute(build_claim(build.pk)) == "failed"
    build.refresh_from_db()
    return build


@pytest.mark.django_db
def test_a_repository_unregistered_since_fails_the_build_with_a_fixed_message(world, people):
    ws = ws_services.workspace_create(
        actor=people["alice"], name="dev", template=world["template"], parameters={"repository": "sample"}
    )
    repository_delete(repository=world["mine"], actor=people["bob"])
    build = _run_in_process(ws.builds.get())
    assert build.status == "failed" and build.error == REPOSITORY_MISSING.format(slug="sample")
    assert not provisioning.workspace_dir(ws).exists()  # terraform never ran


@pytest.mark.django_db
def test_a_repository_with_a_credential_fails_the_build_and_terraform_never_sees_it(world, people):
    ws = ws_services.workspace_create(
        actor=people["alice"], name="dev", template=world["template"], parameters={"repository": "sample"}
    )
    repository_update(repository=world["mine"], actor=people["bob"], credential="ghp_supersecret1234")
    build = _run_in_process(ws.builds.get())
    assert build.status == "failed" and build.error == REPOSITORY_NEEDS_CREDENTIAL.format(slug="sample")
    assert "supersecret" not in str(list(build.log_lines.values_list("text", flat=True)))
    assert not provisioning.workspace_dir(ws).exists()


@pytest.mark.django_db
def test_a_repository_taken_from_the_team_fails_the_build(world, people):
    ws = ws_services.workspace_create(
        actor=people["alice"], name="dev", template=world["template"], parameters={"repository": "sample"}
    )
    repository_update(repository=world["mine"], actor=people["bob"], teams=["search"])
    build = _run_in_process(ws.builds.get())
    assert build.status == "failed" and "no longer registered for team payments" in build.error


@pytest.mark.django_db
def test_the_var_file_gets_the_resolved_address_never_the_slug(world, people):
    ws = ws_services.workspace_create(
        actor=people["alice"], name="dev", template=world["template"], parameters={"repository": "sample"}
    )
    build = ws.builds.get()
    repository = provisioning.resolve_repository(build, ws)
    assert provisioning.variable_values(build, ws, repository.url)["repository"] == world["mine"].url
    assert provisioning.variable_values(build, ws)["repository"] == ""  # unresolved: nothing, not the slug


# --- real builds through a real worker and real Terraform ----------------------------------------------------


def checkout_of(ws: Workspace) -> Path:
    return goldpath_home() / "workspaces" / str(ws.pk) / "src"


@pytest.fixture
def sessions():
    """Workspaces whose session process (started by the local sandbox) must not outlive the test."""
    started: list[Workspace] = []
    yield started
    for ws in started:
        pid_file = checkout_of(ws).parent / ".goldpath" / "session.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)


@pytest.mark.integration
def test_a_real_build_clones_the_registered_repository_and_a_refused_address_never_reaches_git(
    celery_worker, people, teams, sessions
):
    template = publish_local_sandbox()
    repo = make_repo()
    repository = register(repo, people, slug="sample")
    ws = ws_services.workspace_create(
        actor=people["alice"], name="dev", template=template, parameters={"repository": "sample"}
    )
    sessions.append(ws)
    ws = settled(ws.pk)
    build = ws.builds.order_by("-number").first()
    assert ws.status == "running", (build.error, list(build.log_lines.values_list("text", flat=True)))
    src = checkout_of(ws)
    assert (src / "app.py").read_text() == (repo / "app.py").read_text()
    assert git(src, "rev-parse", "HEAD") == git(repo, "rev-parse", "HEAD")
    assert ws.parameters["repository"] == "sample"
    var_file = provisioning.workspace_dir(ws) / tf.VAR_FILE
    first_vars = var_file.read_text()
    assert str(repo) in first_vars

    # a row made before the rules (or edited behind the service's back): the next build must not clone it
    Repository.objects.filter(pk=repository.pk).update(url="https://127.0.0.1:6379/x")
    ws_services.workspace_update(workspace=ws, actor=people["alice"], parameters={"ref": "main"})
    ws = settled(ws.pk)
    build = ws.builds.order_by("-number").first()
    # refused before terraform ran: nothing changed, so the workspace is still running (its session too)
    assert ws.status == "running" and build.status == "failed"
    assert build.error == REPOSITORY_REFUSED.format(slug="sample")
    assert "6379" not in build.error and "fatal" not in build.error
    assert set(build.log_lines.values_list("stage", flat=True)) == {"portal"}  # terraform never started
    assert var_file.read_text() == first_vars  # the refused address never reached a var-file
    assert git(src, "remote", "get-url", "origin") == str(repo)

    # deleting clones nothing: the workspace can still be deleted, without handing Terraform the address
    ws_services.workspace_delete(workspace=ws, actor=people["alice"])
    ws = settled(ws.pk)
    build = ws.builds.order_by("-number").first()
    assert ws.status == "deleted", (build.error, list(build.log_lines.values_list("text", flat=True)))
    assert not src.parent.exists()


@pytest.mark.integration
def test_hooks_and_fsmonitor_of_the_registered_repository_never_run(celery_worker, people, teams, sessions):
    template = publish_local_sandbox()
    marker = goldpath_home() / f"pwned-{uuid.uuid4().hex}"
    repo = make_repo()
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\necho hook >> '{marker}'\n")
    hook.chmod(0o755)
    git(repo, "config", "core.fsmonitor", f"echo fsmonitor >> '{marker}'; true")
    register(repo, people, slug="sample")
    ws = ws_services.workspace_create(
        actor=people["alice"], name="dev", template=template, parameters={"repository": "sample"}
    )
    sessions.append(ws)
    ws = settled(ws.pk)
    build = ws.builds.order_by("-number").first()
    assert ws.status == "running", (build.error, list(build.log_lines.values_list("text", flat=True)))
    assert (checkout_of(ws) / "app.py").exists()
    assert not marker.exists()
    ws_services.workspace_delete(workspace=ws, actor=people["alice"])
    assert settled(ws.pk).status == "deleted"
    assert not marker.exists()


# --- the golden path itself: a checkout someone wrote into never runs their hooks ---------------------------


def test_the_local_sandbox_ignores_hooks_and_fsmonitor_of_a_checkout_it_finds(tmp_path):
    """The checkout step reuses `src` when one is there (a build retried after a failure, a workspace folder
    whose state was lost). Whatever wrote `src/.git` (the developer, an agent) must not get a command run on
    the worker, outside any sandbox, by git's hooks or fsmonitor. Fails with a plain `git checkout`."""
    if subprocess.run(["which", "terraform"], capture_output=True).returncode != 0:
        pytest.skip("terraform is not installed")
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    src = home / "workspaces" / "w" / "src"
    src.parent.mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", str(repo), str(src)], check=True, capture_output=True)
    marker = tmp_path / "pwned"
    hook = src / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\necho hook >> '{marker}'\n")
    hook.chmod(0o755)
    git(src, "config", "core.fsmonitor", f"echo fsmonitor >> '{marker}'; true")
    work = tmp_path / "tf"
    work.mkdir()
    for f in (GOLDEN / "local-sandbox").glob("*.tf"):
        (work / f.name).write_text(f.read_text())
    tf.write_var_file(
        work, {"repository": str(repo), "goldpath_workspace_id": "w", "goldpath_home": str(home), **session_values()}
    )
    runner = tf.TerraformRunner(work)
    assert runner.init().ok
    try:
        result = runner.apply()
        assert result.ok, result.error
        assert not marker.exists(), marker.read_text()
    finally:
        assert runner.destroy().ok  # stops the session process the apply started
