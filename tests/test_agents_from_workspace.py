"""Agents that hand over (issue 15): a group started from a workspace's checkout sees its uncommitted changes;
a run's result applied into the workspace lands in the checkout; a conflicting apply keeps the developer's work
and names the conflict; only the owner may do either; a hostile .git (fsmonitor, filter driver, hooks) in the
checkout never runs on the host.

The integration tests go through a real Celery worker, real Terraform (a template that keeps a checkout where
local-sandbox does, GOLDPATH_HOME/workspaces/<id>/src), real bubblewrap and real git.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from django.test import Client

from catalog.agents.workspace_tree import checkout_path
from catalog.models import AgentGroup, AuditEvent, Workspace, WorkspaceBuild
from catalog.models.agents import AgentApply
from catalog.services import templates as template_services
from catalog.services import workspaces as ws_services
from tests.agent_helpers import demo_tool, finish_run, git, make_repo, register
from tests.conftest import wait_for
from tests.workspace_helpers import published_template

CHECKOUT_TF = """
variable "repository" {
  type = string
}
variable "ref" {
  type    = string
  default = "main"
}
variable "goldpath_workspace_id" {
  type = string
}
variable "goldpath_transition" {
  type    = string
  default = "start"
}
variable "goldpath_home" {
  type = string
}

locals {
  dir = "${var.goldpath_home}/workspaces/${var.goldpath_workspace_id}"
}

resource "terraform_data" "checkout" {
  input = local.dir
  provisioner "local-exec" {
    command = "mkdir -p \\"$DIR\\" && git -c core.hooksPath=/dev/null -c protocol.file.allow=always clone --no-local --quiet -b \\"$REF\\" -- \\"$REPOSITORY\\" \\"$DIR/src\\""
    environment = {
      DIR                 = local.dir
      REPOSITORY          = var.repository
      REF                 = var.ref
      GIT_CONFIG_NOSYSTEM = "1"
      GIT_CONFIG_GLOBAL   = "/dev/null"
    }
  }
  provisioner "local-exec" {
    when    = destroy
    command = "rm -rf \\"$DIR\\""
    environment = {
      DIR = self.input
    }
  }
}

output "path" {
  value = local.dir
}
"""

# an agent that shows what it found: the developer's uncommitted edit and untracked file, and where a link leads
SEER = (
    "import pathlib\n"
    "p = pathlib.Path\n"
    "notes = p('NOTES.md').read_text() if p('NOTES.md').exists() else 'no notes'\n"
    "leak = p('leak').read_text() if p('leak').exists() else 'no leak'\n"
    "p('SEEN.txt').write_text(p('app.py').read_text() + '---' + notes + '---' + leak)\n"
    "r = p('README.md')\n"
    "r.write_text(r.read_text() + 'Agent was here.' + chr(10))\n"
)
SEER_ARGV = ["python3", "-c", SEER]


def _tree(top: Path) -> dict[str, str]:
    """Every file under the checkout (not .git) -> sha256 of its bytes, or the link's target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            if os.path.islink(path):
                out[rel] = "link:" + os.readlink(path)
            else:
                out[rel] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


# --- integration: real worker, Terraform, bubblewrap ------------------------------------------


@pytest.fixture
def world(transactional_db, people, teams, celery_worker):
    from tests.conftest import require_binary

    require_binary("bwrap", "bubblewrap")
    require_binary("terraform", "terraform")
    demo_tool(people, teams, slug="seer", argv=SEER_ARGV)
    repo = make_repo()
    register(repo, people)
    bob = people["bob"]
    template = template_services.template_create(actor=bob, slug="checkout", name="Checkout")
    files = {"main.tf": CHECKOUT_TF}
    version, _ = template_services.template_version_create(template=template, actor=bob, files=files)
    template_services.validate_and_publish(version.pk)
    version.refresh_from_db()
    assert version.status == "published", version.diagnostics
    template_services.template_version_activate(version=version, actor=bob)
    template.refresh_from_db()
    ws = ws_services.workspace_create(
        actor=people["alice"], name="dev", template=template, parameters={"repository": "sample"}
    )

    def settled():
        if WorkspaceBuild.objects.filter(workspace_id=ws.pk, status__in=["pending", "running"]).exists():
            return None
        return Workspace.objects.get(pk=ws.pk)

    ws = wait_for(settled, 90, message="the workspace build")
    assert ws.status == "running", ws.builds.first().error
    src = checkout_path(ws.pk)
    assert (src / ".git").is_dir()
    return {"ws": ws, "src": src, "repo": repo}


def launch(api, user, ws, prompt="Look around"):
    body = {"prompt": prompt, "workspace": str(ws.pk), "agents": [{"tool": "seer", "count": 2}]}
    response = api(user).post("/api/v1/agent-groups/", body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    wait_for(lambda: AgentGroup.objects.get(pk=data["id"]).status == "finished", 120, message="the runs")
    group = AgentGroup.objects.get(pk=data["id"])
    runs = list(group.runs.order_by("index"))
    assert [r.status for r in runs] == ["succeeded", "succeeded"], [(r.status, r.error) for r in runs]
    return group, runs


def apply(api, user, group, run) -> AgentApply:
    response = api(user).post(f"/api/v1/agent-groups/{group.pk}/apply/", {"run": run.pk}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending"
    pk = response.json()["id"]
    return wait_for(lambda: (row := AgentApply.objects.get(pk=pk)).status != "pending" and row, 60, message="the apply")


@pytest.mark.integration
def test_runs_see_uncommitted_work_and_apply_brings_the_result_back(api, people, world):
    ws, src, repo = world["ws"], world["src"], world["repo"]
    head = git(src, "rev-parse", "HEAD")
    (src / "app.py").write_text("def add(a, b):\n    return a + b  # developer's edit, uncommitted\n")
    (src / "NOTES.md").write_text("untracked notes of the developer\n")

    group, runs = launch(api, people["alice"], ws)
    assert group.workspace_id == ws.pk and group.repository.slug == "sample" and group.base_commit == head
    assert "developer's edit" in group.workspace_snapshot and "NOTES.md" in group.workspace_snapshot
    run = runs[0]
    # the agent saw the uncommitted edit and the untracked file; its diff holds its own work only
    assert "developer's edit" in run.diff and "untracked notes of the developer" in run.diff
    assert "+++ b/SEEN.txt" in run.diff and "+++ b/README.md" in run.diff
    assert "a/app.py" not in run.diff and "b/NOTES.md" not in run.diff
    assert run.sandbox["base_commit"] == head and run.sandbox["snapshot_commit"] != head
    assert AuditEvent.objects.filter(verb="agent_group.workspace_snapshotted").count() == 1  # once per group

    # the developer keeps working meanwhile (another file), then applies run 1 into the workspace
    (src / "app.py").write_text("def add(a, b):\n    return a + b  # developer's edit, uncommitted\n\n\nX = 1\n")
    row = apply(api, people["alice"], group, run)
    assert row.status == "applied", row.error
    assert sorted(row.files) == ["README.md", "SEEN.txt"] and row.conflicts == []
    assert (src / "README.md").read_text().endswith("Agent was here.\n")
    assert "developer's edit" in (src / "SEEN.txt").read_text()
    assert (src / "app.py").read_text().endswith("X = 1\n")  # the developer's work is all there
    assert (src / "NOTES.md").read_text() == "untracked notes of the developer\n"
    assert git(src, "rev-parse", "HEAD") == head and git(src, "diff", "--cached", "--name-only") == ""  # unstaged
    event = AuditEvent.objects.get(verb="agent_group.applied")
    assert event.payload["run"] == run.pk and event.payload["workspace"] == str(ws.pk)
    assert event.payload["diff_sha256"] == hashlib.sha256(run.diff.encode()).hexdigest() == row.diff_sha256
    body = api(people["alice"]).get(f"/api/v1/agent-groups/{group.pk}/").json()
    assert body["workspace"] == str(ws.pk) and body["applies"][0]["status"] == "applied"

    # the group page offers Apply beside Accept, and shows what was applied
    browser = Client()
    browser.force_login(people["alice"])
    page = browser.get(f"/agents/{group.pk}/").content.decode()
    assert page.count("Apply into workspace") == 2 and "Applied into the workspace" in page

    # accepting still commits (onto the checkout's HEAD: the snapshot the run started from, then its work)
    response = api(people["alice"]).post(f"/api/v1/agent-groups/{group.pk}/accept/", {"run": run.pk}, format="json")
    assert response.status_code == 202, response.content
    wait_for(lambda: AgentGroup.objects.get(pk=group.pk).accept_status in ("done", "failed"), 60, message="accept")
    group.refresh_from_db()
    assert group.accept_status == "done", group.accept_error
    assert git(repo, "rev-parse", f"{group.accepted_commit}^") == head
    assert "developer's edit" in git(repo, "show", f"{group.accepted_commit}:app.py")
    assert "Agent was here." in git(repo, "show", f"{group.accepted_commit}:README.md")
    record = group.provenance_records.get()
    assert record.statement["predicate"]["workspace"]["snapshot_sha256"] == group.workspace_snapshot_sha256


@pytest.mark.integration
def test_a_conflicting_apply_keeps_the_developers_work_and_names_the_conflict(api, people, world):
    ws, src = world["ws"], world["src"]
    group, runs = launch(api, people["alice"], ws)
    # after the runs, the developer ends README.md differently from the agent
    with (src / "README.md").open("a") as fh:
        fh.write("The developer's own last line.\n")
    before = _tree(src)
    row = apply(api, people["alice"], group, runs[1])
    assert row.status == "conflict" and row.conflicts == ["README.md"] and row.files == []
    assert _tree(src) == before  # exactly as it was: nothing written, no conflict markers
    assert AuditEvent.objects.filter(verb="agent_group.apply_conflicted", payload__run=runs[1].pk).exists()
    page = Client()
    page.force_login(people["alice"])
    assert "conflicts in README.md" in page.get(f"/agents/{group.pk}/").content.decode()


@pytest.mark.integration
def test_a_hostile_checkout_never_runs_anything_on_the_host(api, people, world, tmp_path):
    ws, src = world["ws"], world["src"]
    markers = {name: tmp_path / name for name in ("fsmonitor", "clean", "smudge", "hook", "process")}
    secret = tmp_path / "host-secret.txt"
    secret.write_text("HOST SECRET 7f3a\n")
    with (src / ".git" / "config").open("a") as fh:
        fh.write(
            "[core]\n"
            f"\tfsmonitor = touch {markers['fsmonitor']}; true\n"
            f"\thooksPath = {src / '.git' / 'evil-hooks'}\n"
            '[filter "evil"]\n'
            f"\tclean = touch {markers['clean']}; cat\n"
            f"\tsmudge = touch {markers['smudge']}; cat\n"
            f"\tprocess = touch {markers['process']}\n"
            "\trequired = true\n"
        )
    hooks = src / ".git" / "evil-hooks"
    hooks.mkdir()
    for name in ("pre-commit", "post-checkout", "post-merge", "post-index-change", "reference-transaction"):
        (hooks / name).write_text(f"#!/bin/sh\ntouch {markers['hook']}\n")
        (hooks / name).chmod(0o755)
    (src / ".gitattributes").write_text("* filter=evil\n")
    (src / "leak").symlink_to(secret)  # a link to a host file: copied as a link, never followed
    (src / "app.py").write_text("def add(a, b):\n    return a + b  # hostile developer\n")

    group, runs = launch(api, people["alice"], ws)
    assert "hostile developer" in runs[0].diff  # the agent still saw the work
    assert "HOST SECRET" not in group.workspace_snapshot + runs[0].diff + runs[1].diff
    assert "no leak" in runs[0].diff
    row = apply(api, people["alice"], group, runs[0])
    assert row.status == "applied", row.error
    assert "Agent was here." in (src / "README.md").read_text()
    assert os.readlink(src / "leak") == str(secret)
    assert [name for name, marker in markers.items() if marker.exists()] == []
    # control: the same checkout does run its filter and fsmonitor under a plain host git (the attack is real)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "-C", str(src), "add", "-A"], env=env, capture_output=True, check=False)
    assert markers["clean"].exists() or markers["process"].exists()


# --- without a worker: who may, and bad input -----------------------------------------------------


@pytest.fixture
def local_ws(db, people, teams):
    """Alice's running workspace with a checkout where local-sandbox keeps it (set up as a leaf)."""
    from tests.workspace_helpers import sample_repository

    sample_repository(people)
    demo_tool(people, teams)
    template = published_template(slug="local")
    ws = ws_services.workspace_create(
        actor=people["alice"], name="dev", template=template, parameters={"repository": "sample"}
    )
    src = checkout_path(ws.pk)
    src.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    Workspace.objects.filter(pk=ws.pk).update(status="running", outputs={"path": str(src.parent)})
    ws.refresh_from_db()
    return ws


def body_for(ws, **extra):
    return {"prompt": "Fix it", "workspace": str(ws.pk), "agents": [{"tool": "demo-agent"}], **extra}


def test_only_the_owner_runs_agents_in_a_workspace(api, people, local_ws):
    url = "/api/v1/agent-groups/"
    assert api(people["dave"]).post(url, body_for(local_ws), format="json").status_code == 404  # cannot see it
    for name in ("carol", "bob"):  # can see it (manager of its team, platform engineer), do not own it
        response = api(people[name]).post(url, body_for(local_ws), format="json")
        assert response.status_code == 403, (name, response.content)
    assert not AgentGroup.objects.exists()
    both = api(people["alice"]).post(url, body_for(local_ws, repository="sample"), format="json")
    assert both.status_code == 400 and {"repository", "workspace"} <= set(both.json()), both.json()
    neither = api(people["alice"]).post(url, {"prompt": "x", "agents": [{"tool": "demo-agent"}]}, format="json")
    assert neither.status_code == 400 and "workspace" in neither.json()
    bad = api(people["alice"]).post(url, body_for(local_ws) | {"workspace": "../../etc"}, format="json")
    assert bad.status_code == 400
    Workspace.objects.filter(pk=local_ws.pk).update(outputs={})  # a template with no checkout Goldpath can read
    response = api(people["alice"]).post(url, body_for(local_ws), format="json")
    assert response.status_code == 409 and "checkout" in response.json()["detail"]
    Workspace.objects.filter(pk=local_ws.pk).update(outputs={"path": str(checkout_path(local_ws.pk).parent)})
    Workspace.objects.filter(pk=local_ws.pk).update(status="failed")
    assert api(people["alice"]).post(url, body_for(local_ws), format="json").status_code == 409
    assert not AgentGroup.objects.exists()
    Workspace.objects.filter(pk=local_ws.pk).update(status="stopped")
    created = api(people["alice"]).post(url, body_for(local_ws), format="json")
    assert created.status_code == 201, created.content
    assert created.json()["workspace"] == str(local_ws.pk) and created.json()["repository"] == "sample"


def test_only_the_owner_applies_and_only_a_succeeded_run(api, people, local_ws, tmp_path):
    from catalog.services import agent_groups as agent_services

    group = agent_services.agent_group_create(
        actor=people["alice"], prompt="Fix it", workspace=str(local_ws.pk), agents=[{"tool": "demo-agent"}]
    )
    run = group.runs.get()
    url = f"/api/v1/agent-groups/{group.pk}/apply/"
    assert api(people["alice"]).post(url, {"run": run.pk}, format="json").status_code == 409  # still pending
    finish_run(run, diff="diff --git a/X b/X\nnew file mode 100644\n--- /dev/null\n+++ b/X\n@@ -0,0 +1 @@\n+x\n")
    assert api(people["dave"]).post(url, {"run": run.pk}, format="json").status_code == 404
    assert api(people["bob"]).post(url, {"run": run.pk}, format="json").status_code == 403
    assert api(people["alice"]).post(url, {"run": "x"}, format="json").status_code == 400
    assert not AgentApply.objects.exists()
    response = api(people["alice"]).post(url, {"run": run.pk}, format="json")
    assert response.status_code == 202 and response.json()["status"] == "pending", response.content
    assert api(people["alice"]).post(url, {"run": run.pk}, format="json").status_code == 409  # one at a time
    assert AuditEvent.objects.filter(verb="agent_group.apply_requested").count() == 1
    # the page's "Apply into workspace" button goes through the same service
    browser = Client()
    browser.force_login(people["bob"])
    page = browser.post(f"/agents/{group.pk}/accept/", {"run": run.pk, "action": "apply"}, follow=True)
    assert "Only the workspace&#x27;s owner" in page.content.decode() and AgentApply.objects.count() == 1


def test_the_workspace_page_offers_run_agents_here(people, local_ws):
    browser = Client()
    browser.force_login(people["alice"])
    page = browser.get(f"/workspaces/{local_ws.pk}/").content.decode()
    assert f"/agents/?workspace={local_ws.pk}" in page and "Run agents here" in page
    form = browser.get(f"/agents/?workspace={local_ws.pk}").content.decode()
    assert f'<option value="{local_ws.pk}" selected>' in form
    response = browser.post(
        "/agents/", {"prompt": "Fix it", "workspace": str(local_ws.pk), "repository": "", "count-demo-agent": "1"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert AgentGroup.objects.get().workspace_id == local_ws.pk
    browser.force_login(people["bob"])
    assert "Run agents here" not in browser.get(f"/workspaces/{local_ws.pk}/").content.decode()
