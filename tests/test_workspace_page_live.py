"""The workspace page follows its build: the log poller brings the status badge, the buttons, the notice, the
builds table and the outputs with each poll and stops when the build has ended; the log's cursor starts after the
last line the page rendered (a line written between the page's reads once showed twice); the new-workspace form
has a label for every input and the shared form styles.

The build's life is driven through the services the worker calls (claim, log, finish); the same flow through a
real worker, Terraform and a browser is in tests/browser/test_workspace_live.py."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest
from django.db import connection

from catalog.models import BuildStatus
from catalog.services import builds as build_services
from catalog.services import workspaces as ws_services
from tests.workspace_helpers import granted_tools, published_template, sample_repository

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(people, teams):
    return {
        "tools": granted_tools(people, teams),
        "template": published_template(),
        "repository": sample_repository(people),
    }


def create(world, people, name="dev"):
    return ws_services.workspace_create(
        actor=people["alice"], name=name, template=world["template"], parameters={"repository": "sample"}
    )


def poll_url(page: str) -> str | None:
    """The URL the log poller asks next, or None once it has stopped."""
    match = re.search(r'<div id="log-poller"[^>]*?hx-get="([^"]+)"', page)
    return html.unescape(match.group(1)) if match else None


def oob(part: str, element_id: str) -> str:
    """The out-of-band element `element_id` of a poll response (htmx swaps it into the page)."""
    match = re.search(rf'<(\w+)[^>]*id="{element_id}"[^>]*hx-swap-oob="true"[^>]*>.*?</\1>', part, re.S)
    assert match, f"#{element_id} is not refreshed by the poll:\n{part}"
    return match.group(0)


def test_status_buttons_and_builds_follow_the_build_and_polling_stops_when_it_ends(world, people, client):
    ws = create(world, people)
    build = ws.builds.get()
    client.force_login(people["alice"])
    page = client.get(f"/workspaces/{ws.pk}/").content.decode()
    assert '<span class="badge status-pending" id="ws-status">Pending</span>' in page
    url = poll_url(page)
    assert url == f"/workspaces/{ws.pk}/log?build={build.pk}&after=0"

    # the worker claims the build and logs: the poll says starting, shows the running build, offers no buttons
    build_services.build_claim(build.pk)
    build_services.build_log(build.pk, [("init", "info", "terraform init"), ("apply", "info", "Creating...")])
    part = client.get(url).content.decode()
    assert "Starting" in oob(part, "ws-status")
    assert 'status-running">running</span>' in oob(part, "ws-builds")
    actions = oob(part, "ws-actions")
    assert "<button" not in actions and "Build 1 (start) is running" in actions
    assert "terraform init" in part and "Creating..." in part
    url = poll_url(part)
    assert url.endswith("after=2")

    # the build succeeds: running, the stop button, the outputs, and no further poll
    build_services.build_log(build.pk, [("apply", "info", "Apply complete!")])
    build_services.build_finish(build.pk, status=BuildStatus.SUCCEEDED, outputs={"path": "/srv/ws/dev"})
    part = client.get(url).content.decode()
    assert '<span class="badge status-running" id="ws-status" hx-swap-oob="true">Running</span>' in part
    assert f'action="/workspaces/{ws.pk}/stop/"' in oob(part, "ws-actions")
    assert 'status-succeeded">succeeded</span>' in oob(part, "ws-builds")
    assert "/srv/ws/dev" in oob(part, "ws-outputs")
    assert "Apply complete!" in part
    assert poll_url(part) is None and 'data-live="0"' in part

    # a reload shows the same, without a poller
    page = client.get(f"/workspaces/{ws.pk}/").content.decode()
    assert poll_url(page) is None and "Apply complete!" in page and f"/workspaces/{ws.pk}/stop/" in page


def test_a_failed_build_shows_its_error_with_the_page_live(world, people, client):
    ws = create(world, people)
    build = ws.builds.get()
    client.force_login(people["alice"])
    url = poll_url(client.get(f"/workspaces/{ws.pk}/").content.decode())
    build_services.build_claim(build.pk)
    build_services.build_finish(build.pk, status=BuildStatus.FAILED, error="Error: the command failed")
    part = client.get(url).content.decode()
    assert "Failed" in oob(part, "ws-status")
    notice = oob(part, "ws-notice")
    assert "Build 1 (start) failed." in notice and "Error: the command failed" in notice
    assert f"/workspaces/{ws.pk}/edit/" in oob(part, "ws-actions")  # a failed workspace can be fixed
    assert poll_url(part) is None


def test_the_first_log_line_is_shown_once_when_the_worker_writes_it_while_the_page_renders(world, people, client):
    """The page read the build (log_count 0), then its lines: a line the worker wrote in between was rendered
    and the poller, told to start after log_count, fetched it again."""
    ws = create(world, people)
    build = ws.builds.get()
    build_services.build_claim(build.pk)
    first = "Build 1: start on worker-7"
    wrote: list[bool] = []

    def worker_writes_meanwhile(execute, sql, params, many, context):
        if not wrote and sql.lstrip().upper().startswith("SELECT") and '"catalog_buildlogline"' in sql:
            wrote.append(True)
            build_services.build_log(build.pk, [("portal", "info", first)])  # the worker's first flush
        return execute(sql, params, many, context)

    client.force_login(people["alice"])
    with connection.execute_wrapper(worker_writes_meanwhile):
        page = client.get(f"/workspaces/{ws.pk}/").content.decode()
    assert wrote and page.count(first) == 1
    part = client.get(poll_url(page)).content.decode()
    assert first not in part  # what the poller appends to the log on screen


def test_a_build_ending_while_the_poll_reads_never_leaves_a_stale_status_behind(world, people, client):
    """The poll read the workspace, then the build: a build that ended in between stopped the poller while the
    badge still said starting."""
    ws = create(world, people)
    build = ws.builds.get()
    build_services.build_claim(build.pk)
    client.force_login(people["alice"])
    url = poll_url(client.get(f"/workspaces/{ws.pk}/").content.decode())
    finished: list[bool] = []

    def worker_finishes_meanwhile(execute, sql, params, many, context):
        if not finished and sql.lstrip().upper().startswith("SELECT") and 'FROM "catalog_workspacebuild"' in sql:
            finished.append(True)
            build_services.build_finish(build.pk, status=BuildStatus.SUCCEEDED, outputs={})
        return execute(sql, params, many, context)

    with connection.execute_wrapper(worker_finishes_meanwhile):
        part = client.get(url).content.decode()
    assert finished and poll_url(part) is None
    assert "Running" in oob(part, "ws-status")


def test_the_poller_follows_its_own_build_and_never_mixes_in_the_next_ones_lines(world, people, client):
    ws = create(world, people)
    build = ws.builds.get()
    build_services.build_claim(build.pk)
    build_services.build_log(build.pk, [("apply", "info", "one")])
    client.force_login(people["alice"])
    url = poll_url(client.get(f"/workspaces/{ws.pk}/").content.decode())
    build_services.build_finish(build.pk, status=BuildStatus.SUCCEEDED, outputs={})
    ws.refresh_from_db()
    stop = ws_services.workspace_stop(workspace=ws, actor=people["alice"])
    build_services.build_claim(stop.pk)
    build_services.build_log(stop.pk, [("apply", "info", "two"), ("apply", "info", "three")])
    part = client.get(url).content.decode()
    assert "three" not in part and poll_url(part) is None  # build 1 is over: its poller stops


# --- the new-workspace form ------------------------------------------------------------------------------------


class _Controls(HTMLParser):
    """Form controls of a page and whether each has a label (`<label for=id>` or an enclosing `<label>`)."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict] = []
        self.label_for: set[str] = set()
        self.open_labels = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "label":
            self.open_labels += 1
            if a.get("for"):
                self.label_for.add(a["for"])
        elif tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
            self.controls.append({**a, "_tag": tag, "_wrapped": self.open_labels > 0})

    def handle_endtag(self, tag):
        if tag == "label":
            self.open_labels -= 1

    def unlabelled(self) -> list[dict]:
        return [c for c in self.controls if not c["_wrapped"] and c.get("id") not in self.label_for]


def controls(page: str) -> _Controls:
    form = page[page.index("<main") :]
    parser = _Controls()
    parser.feed(form)
    return parser


def test_the_new_workspace_form_labels_every_input_and_uses_the_form_styles(world, people, client):
    client.force_login(people["alice"])
    page = client.get("/golden-paths/sandbox/new-workspace/").content.decode()
    found = controls(page)
    names = {c.get("name") for c in found.controls}
    assert {"name", "repository", "ref", "display_name", "memory_mb", "allow_network", "tools"} <= names
    assert found.unlabelled() == []
    assert '<section class="card form-card">' in page and '<form method="post" class="stack"' in page
    assert page.count('<div class="field') >= 6  # the name and each parameter
    assert '<label class="checkbox" for="id_allow_network">' in page
    assert '<button class="primary" type="submit">Create workspace</button>' in page

    r = client.post("/golden-paths/sandbox/new-workspace/", {"name": "Bad Name", "memory_mb": "lots"})
    assert r.status_code == 400
    page = r.content.decode()
    assert '<div class="field has-error">' in page
    assert '<ul class="errorlist" role="alert"><li>Must be a number.</li></ul>' in page
    assert controls(page).unlabelled() == []
