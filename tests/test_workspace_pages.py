"""Pages: gallery, template page, create form from the parameter schema with policy-filtered tools,
workspace page with the live log partial, my workspaces."""

from __future__ import annotations

import pytest

from catalog.models import Workspace
from catalog.services.builds import build_log
from tests.workspace_helpers import granted_tools, published_template, sample_repository

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(people, teams):
    return {
        "tools": granted_tools(people, teams),
        "template": published_template(),
        "repository": sample_repository(people),
    }


def login(client, user):
    client.force_login(user)
    return client


def test_gallery_and_template_page(world, people, client):
    login(client, people["alice"])
    r = client.get("/golden-paths/")
    assert r.status_code == 200 and b"Sandbox" in r.content and b"Create a workspace" in r.content
    r = client.get("/golden-paths/sandbox/")
    assert r.status_code == 200 and b"repository" in r.content and b"v1" in r.content


def test_form_is_generated_from_the_schema_and_tools_follow_the_policy(world, people, client):
    login(client, people["alice"])
    html = client.get("/golden-paths/sandbox/new-workspace/").content.decode()
    assert '<select id="id_repository" name="repository" required>' in html  # a picker, never a free path
    assert '<option value="sample">Sample (sample, internal)</option>' in html
    assert 'name="memory_mb" type="number"' in html
    assert 'type="checkbox" name="allow_network"' in html
    assert "goldpath_workspace_id" not in html  # built-ins are never shown
    assert 'value="claude-code"' in html and 'value="aider"' in html
    assert 'value="copilot"' not in html  # not granted: shown, not pickable, with the reason
    assert 'data-tool="copilot"' in html and "grant" in html.lower()


def test_form_errors_then_create_then_workspace_page(world, people, client):
    login(client, people["alice"])
    r = client.post("/golden-paths/sandbox/new-workspace/", {"name": "dev", "memory_mb": "lots"})
    assert r.status_code == 400
    assert b"Must be a number." in r.content
    assert not Workspace.objects.exists()
    r = client.post("/golden-paths/sandbox/new-workspace/", {"name": "dev"})
    assert r.status_code == 400 and b"This parameter is required." in r.content
    r = client.post(
        "/golden-paths/sandbox/new-workspace/",
        {"name": "dev", "repository": "sample", "display_name": "<b>x</b>", "tools": ["aider"]},
    )
    ws = Workspace.objects.get()
    assert r.status_code == 302 and r.url == f"/workspaces/{ws.pk}/"
    assert [t.slug for t in ws.tools.all()] == ["aider"]
    page = client.get(r.url).content.decode()
    assert "dev" in page and "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    build = ws.builds.get()
    build_log(build.pk, [("init", "info", "hello"), ("apply", "info", "world")])
    part = client.get(f"/workspaces/{ws.pk}/log?after=1").content.decode()
    assert "world" in part and "hello" not in part and "after=2" in part
    assert "My workspaces" in client.get("/workspaces/").content.decode()
    assert "dev" in client.get("/workspaces/").content.decode()


def test_other_developer_gets_404_and_actions_need_the_owner(world, people, client):
    from catalog.services import workspaces as ws_services

    ws = ws_services.workspace_create(
        actor=people["alice"], name="dev", template=world["template"], parameters={"repository": "sample"}
    )
    login(client, people["dave"])
    assert client.get(f"/workspaces/{ws.pk}/").status_code == 404
    assert client.get(f"/workspaces/{ws.pk}/log").status_code == 404
    assert client.post(f"/workspaces/{ws.pk}/delete/").status_code == 404
    ws.refresh_from_db()
    assert ws.status == "pending"


def test_update_available_and_draft_diagnostics_are_shown(world, people, client):
    from catalog.models import TemplateVersion
    from catalog.services import workspaces as ws_services

    ws = ws_services.workspace_create(
        actor=people["alice"], name="dev", template=world["template"], parameters={"repository": "sample"}
    )
    ws.builds.update(status="succeeded")
    type(ws).objects.filter(pk=ws.pk).update(status="running")
    template = world["template"]
    v2 = TemplateVersion.objects.create(
        template=template, number=2, files={"main.tf": "#2"}, content_hash="h2", status="published", parameters=[]
    )
    TemplateVersion.objects.create(
        template=template,
        number=3,
        files={"main.tf": "#3"},
        content_hash="h3",
        diagnostics="provider registry unreachable",
    )
    template.active_version = v2
    template.save()
    login(client, people["alice"])
    page = client.get(f"/workspaces/{ws.pk}/").content.decode()
    assert "Update available" in page and "/update/" in page
    assert "provider registry unreachable" in client.get("/golden-paths/sandbox/").content.decode()
    r = client.post(f"/workspaces/{ws.pk}/update/")
    assert r.status_code == 302
    ws.refresh_from_db()
    assert ws.template_version_id == v2.pk and ws.status == "starting"
