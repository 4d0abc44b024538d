"""Platform engineers validate, publish and activate template versions from the template page, through the
services the API calls, with a real worker running `terraform validate`: the versions table polls while a check
is queued, shows the validation errors of a broken draft, and offers Activate once a version is published.
Developers see no buttons and are refused (403) with nothing changed."""

from __future__ import annotations

import html
import re

import pytest

from catalog.models import AuditEvent, TemplateVersion, WorkspaceTemplate
from catalog.services import templates as template_services
from tests.conftest import require_binary, wait_for
from tests.tf.templates import BROKEN, ECHO

PAGE = "/golden-paths/echo/"
UNDECLARED = 'An input variable with the name "missing" has not been declared.'


@pytest.fixture
def drafts(people):
    template = template_services.template_create(actor=people["bob"], slug="echo", name="Echo")
    good, _ = template_services.template_version_create(template=template, actor=people["bob"], files=ECHO)
    broken, _ = template_services.template_version_create(template=template, actor=people["bob"], files=BROKEN)
    return template, good, broken


def action(number: int, verb: str) -> str:
    return f"{PAGE}versions/{number}/{verb}/"


def versions_poll(page: str) -> str | None:
    match = re.search(r'<section class="card" id="template-versions"[^>]*hx-get="([^"]+)"', page)
    return match.group(1) if match else None


def checked(client, version: TemplateVersion) -> str:
    """Wait for the worker's answer, following the page's poller; the last answer (which no longer polls)."""

    def answer():
        part = client.get(f"{PAGE}versions/").content.decode()
        return None if versions_poll(part) else part

    part = wait_for(answer, 60, interval=0.3, message=f"the check of v{version.number}")
    return html.unescape(part)


def row(page: str, number: int) -> str:
    return page.split(f'<tr id="version-{number}">', 1)[1].split("</tr>", 1)[0]


@pytest.mark.integration
def test_validate_publish_and_activate_from_the_template_page(celery_worker, people, teams, client, drafts):
    require_binary("terraform", "Terraform")
    template, good, broken = drafts
    client.force_login(people["bob"])
    page = client.get(PAGE).content.decode()
    assert versions_poll(page) is None  # nothing queued: no polling
    for number in (1, 2):
        assert f'action="{action(number, "validate")}"' in page and f'action="{action(number, "publish")}"' in page

    # validate the broken draft: queued, then the worker's errors on the page; still a draft
    r = client.post(action(2, "validate"))
    assert r.status_code == 302 and r.url == f"{PAGE}#versions"
    page = client.get(PAGE).content.decode()
    assert "Validation of v2 requested" in page
    if versions_poll(page):  # the worker may already have answered
        assert "checking…" in row(page, 2) and f'action="{action(2, "publish")}"' not in page
    part = checked(client, broken)
    assert "Not valid" in row(part, 2) and UNDECLARED in row(part, 2)
    broken.refresh_from_db()
    assert broken.status == "draft" and broken.publish_requested_at is None
    assert AuditEvent.objects.filter(verb=template_services.VALIDATED, target_id=str(broken.pk)).exists()

    # validate the good one: valid, with its parameters named, still a draft
    assert client.post(action(1, "validate")).status_code == 302
    part = checked(client, good)
    assert "Valid" in row(part, 1) and "<code>repository</code>" in row(part, 1)
    assert TemplateVersion.objects.get(pk=good.pk).status == "draft"

    # publish it: the page then offers Activate; publishing the broken one keeps it a draft with its errors
    assert client.post(action(1, "publish")).status_code == 302
    assert client.post(action(2, "publish")).status_code == 302
    queued = TemplateVersion.objects.filter(template=template, status="draft", publish_requested_at__isnull=False)
    wait_for(lambda: not queued.exists(), 60, message="the publications")
    part = checked(client, good)
    assert "Published" in row(part, 1) and f'action="{action(1, "activate")}"' in row(part, 1)
    assert "Draft" in row(part, 2) and UNDECLARED in row(part, 2)

    # activate: the template's active version, offered in the gallery
    r = client.post(action(1, "activate"))
    page = client.get(r.url).content.decode()
    assert "v1 is now the active version." in page and "Create a workspace" in page
    assert WorkspaceTemplate.objects.get(pk=template.pk).active_version_id == good.pk
    assert f'action="{action(1, "activate")}"' not in page

    # a refused transition is a message on the page, not an error page
    r = client.post(action(1, "publish"))
    assert r.status_code == 302
    assert "only a draft can be published" in client.get(r.url).content.decode()


@pytest.mark.django_db
def test_developers_get_no_buttons_and_a_403_with_nothing_changed(people, teams, client, drafts):
    template, good, broken = drafts
    client.force_login(people["alice"])
    page = client.get(PAGE).content.decode()
    assert "Validate" not in page and 'action="' + action(1, "publish") not in page
    for verb in ("validate", "publish", "activate"):
        assert client.post(action(1, verb)).status_code == 403
    good.refresh_from_db()
    assert good.status == "draft" and good.publish_requested_at is None
    assert not AuditEvent.objects.filter(verb__startswith="template.", actor_repr="alice").exists()
    assert client.post(action(9, "publish")).status_code == 404


@pytest.mark.django_db
def test_the_api_validates_through_the_same_service(people, teams, api, drafts, django_capture_on_commit_callbacks):
    template, good, broken = drafts
    r = api(people["alice"]).post("/api/v1/templates/echo/versions/2/validate/")
    assert r.status_code == 403
    with django_capture_on_commit_callbacks(execute=False) as sent:
        r = api(people["bob"]).post("/api/v1/templates/echo/versions/2/validate/")
    assert r.status_code == 202 and r.json()["check_pending"] is True and len(sent) == 1
    template_services.check_version(broken.pk, publish=False)  # what the worker's task runs
    body = api(people["bob"]).get("/api/v1/templates/echo/versions/2/").json()
    assert body["status"] == "draft" and body["check_pending"] is False and UNDECLARED in body["diagnostics"]
