"""A failed (or stopped, or running) workspace can be fixed: its owner edits its parameters on the page or sends
them to the API's `update`, both through `workspace_update`, validated like at creation (400 with field errors,
nothing changed), and a new build runs with them. The same flow through a real worker and Terraform is in
tests/test_workspace_outcomes.py."""

from __future__ import annotations

import pytest

from catalog.models import AuditEvent, BuildStatus, Workspace, WorkspaceBuild
from catalog.services import builds as build_services
from catalog.services import workspaces as ws_services
from tests.workspace_helpers import SANDBOX_PARAMETERS, granted_tools, published_template, sample_repository

pytestmark = pytest.mark.django_db

SECRET = {"name": "token", "type": "string", "default": "", "description": "", "sensitive": True, "required": False}


@pytest.fixture
def world(people, teams):
    return {
        "tools": granted_tools(people, teams),
        "template": published_template(parameters=[*SANDBOX_PARAMETERS, SECRET]),
        "repository": sample_repository(people),
    }


def failed_workspace(world, people, **parameters) -> Workspace:
    """A workspace whose first build failed, through the services the worker calls."""
    ws = ws_services.workspace_create(
        actor=people["alice"],
        name="dev",
        template=world["template"],
        parameters={"repository": "sample", "ref": "nope", "display_name": "Dev box", **parameters},
    )
    build = ws.builds.get()
    build_services.build_claim(build.pk)
    build_services.build_finish(build.pk, status=BuildStatus.FAILED, error="ref 'nope' not found")
    ws.refresh_from_db()
    assert ws.status == "failed"
    return ws


def snapshot(ws: Workspace) -> tuple:
    ws = Workspace.objects.get(pk=ws.pk)
    return ws.status, ws.parameters, WorkspaceBuild.objects.filter(workspace=ws).count()


def form(**over) -> dict:
    data = {"repository": "sample", "ref": "main", "display_name": "Dev box", "memory_mb": "2048", "token": ""}
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def test_the_workspace_page_offers_to_edit_the_parameters_of_a_failed_workspace(world, people, client):
    ws = failed_workspace(world, people, token="s3cr3t")
    client.force_login(people["alice"])
    page = client.get(f"/workspaces/{ws.pk}/").content.decode()
    assert f'href="/workspaces/{ws.pk}/edit/">Edit parameters</a>' in page
    assert "s3cr3t" not in page and "********" in page  # a sensitive parameter is masked on the page
    page = client.get(f"/workspaces/{ws.pk}/edit/").content.decode()
    assert '<input id="id_ref" name="ref" type="text" value="nope">' in page  # the current values
    assert 'value="Dev box"' in page and "s3cr3t" not in page  # never a secret back to the browser
    assert "Leave blank to keep the current value." in page
    assert '<button class="primary" type="submit">Save and rebuild</button>' in page


@pytest.mark.parametrize(
    "over, field, message",
    [
        ({"memory_mb": "lots"}, "memory_mb", "Must be a number."),
        ({"repository": ""}, "repository", "This parameter is required."),
        ({"repository": "file:///etc"}, "repository", "No repository file:///etc is registered for your teams."),
        ({"ref": "--orphan=x"}, "ref", None),
    ],
)
def test_bad_parameters_answer_400_with_the_field_error_and_change_nothing(world, people, client, over, field, message):
    ws = failed_workspace(world, people)
    before = snapshot(ws)
    client.force_login(people["alice"])
    r = client.post(f"/workspaces/{ws.pk}/edit/", form(**over))
    assert r.status_code == 400
    page = r.content.decode()
    error_block = page[page.index(f'for="id_{field}"') :].split("</div>", 1)[0]
    assert '<ul class="errorlist" role="alert">' in error_block
    if message:
        assert message in error_block
    assert snapshot(ws) == before


def test_good_parameters_rebuild_the_failed_workspace_with_them(world, people, client):
    ws = failed_workspace(world, people, token="s3cr3t")
    client.force_login(people["alice"])
    r = client.post(f"/workspaces/{ws.pk}/edit/", form(ref="v2", display_name=""))
    assert r.status_code == 302 and r.url == f"/workspaces/{ws.pk}/"
    ws.refresh_from_db()
    build = ws.builds.order_by("-number").first()
    assert ws.status == "starting" and build.number == 2 and build.status == "pending"
    # the emptied optional field goes back to the template's default; the blank secret keeps its value
    expected = {"repository": "sample", "ref": "v2", "memory_mb": 2048, "allow_network": False, "token": "s3cr3t"}
    assert ws.parameters == expected and build.parameters == expected
    event = AuditEvent.objects.filter(verb__startswith="workspace.update").latest("id")
    assert event.payload["parameters"]["ref"] == "v2" and event.payload["parameters"]["token"] == "********"
    page = client.get(r.url).content.decode()
    assert "Parameters saved; build 2 rebuilds the workspace with them." in page


def test_stopped_and_running_workspaces_can_be_edited_but_not_while_a_build_runs(world, people, client):
    ws = failed_workspace(world, people)
    client.force_login(people["alice"])
    assert client.post(f"/workspaces/{ws.pk}/edit/", form()).status_code == 302
    r = client.get(f"/workspaces/{ws.pk}/edit/")  # build 2 is queued: no edit now
    assert r.status_code == 302
    assert "its parameters cannot change now" in client.get(r.url).content.decode()
    before = snapshot(ws)
    r = client.post(f"/workspaces/{ws.pk}/edit/", form(ref="other"))
    assert r.status_code == 302 and snapshot(ws) == before
    build = ws.builds.order_by("-number").first()
    build_services.build_claim(build.pk)
    build_services.build_finish(build.pk, status=BuildStatus.SUCCEEDED, outputs={})
    assert client.get(f"/workspaces/{ws.pk}/edit/").status_code == 200  # running
    assert client.post(f"/workspaces/{ws.pk}/edit/", form(ref="other")).status_code == 302
    assert Workspace.objects.get(pk=ws.pk).parameters["ref"] == "other"


def test_only_the_owner_platform_engineers_and_admins_edit(world, people, client):
    ws = failed_workspace(world, people)
    before = snapshot(ws)
    client.force_login(people["dave"])  # another team's developer: does not see it
    assert client.get(f"/workspaces/{ws.pk}/edit/").status_code == 404
    assert client.post(f"/workspaces/{ws.pk}/edit/", form(ref="x")).status_code == 404
    client.force_login(people["erin"])  # the auditor reads it, changes nothing
    assert client.get(f"/workspaces/{ws.pk}/edit/").status_code == 403
    assert client.post(f"/workspaces/{ws.pk}/edit/", form(ref="x")).status_code == 403
    assert snapshot(ws) == before
    client.force_login(people["bob"])
    assert client.post(f"/workspaces/{ws.pk}/edit/", form(ref="fixed")).status_code == 302
    assert Workspace.objects.get(pk=ws.pk).parameters["ref"] == "fixed"


# --- the API: the same service ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, errors",
    [
        ({"parameters": {"memory_mb": "lots"}}, {"parameters": {"memory_mb": ["Must be a number."]}}),
        ({"parameters": {"nope": 1}}, {"parameters": {"nope": ["Unknown parameter."]}}),
        ({"parameters": {"repository": None}}, {"parameters": {"repository": ["This parameter is required."]}}),
        ({"parameters": ["ref", "main"]}, {"parameters": ["Must be an object."]}),
        ({"parameters": {"ref": "x"}, "tools": []}, {"tools": ["Unknown field."]}),
    ],
)
def test_api_update_validates_parameters_like_create(world, people, api, body, errors):
    ws = failed_workspace(world, people)
    before = snapshot(ws)
    r = api(people["alice"]).post(f"/api/v1/workspaces/{ws.pk}/update/", body, format="json")
    assert r.status_code == 400, r.content
    got = r.json()  # field errors at the top level, as for create
    for key, value in errors.items():
        if isinstance(value, dict):
            assert {k: got[key][k] for k in value} == value
        else:
            assert got[key] == value
    assert snapshot(ws) == before


def test_api_update_fixes_a_failed_workspace(world, people, api):
    ws = failed_workspace(world, people)
    r = api(people["alice"]).post(f"/api/v1/workspaces/{ws.pk}/update/", {"parameters": {"ref": "v2"}}, format="json")
    assert r.status_code == 202, r.content
    body = r.json()
    assert body["status"] == "starting" and body["parameters"]["ref"] == "v2"
    assert body["parameters"]["display_name"] == "Dev box"  # merged into the current parameters
    assert body["latest_build"]["number"] == 2 and body["latest_build"]["status"] == "pending"
    assert WorkspaceBuild.objects.get(workspace=ws, number=2).parameters["ref"] == "v2"
