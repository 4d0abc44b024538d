"""A tool version's egress hosts (the allow-list of `network_policy=allow_listed` agent runs): shown in the
versions API, set when adding a version and by PATCH /api/v1/tools/<slug>/versions/<version>/ or the version's
page, platform engineers and admins only, validated, audited with before and after, nothing changed on a refusal."""

from __future__ import annotations

import pytest

from catalog.models import AITool, AuditEvent, ToolVersion
from catalog.services import tool_versions
from catalog.services import tools as tool_services
from tests.factories import ToolFactory, ToolVersionFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/tools/acme-cli/versions/"
DETAIL = URL + "1.0.0/"
PAGE = "/tools/acme-cli/versions/1.0.0/edit/"
BAD = [
    ["https://api.acme.dev"],
    ["api.acme.dev/v1"],
    ["api acme.dev"],
    ["*"],
    ["api.*.dev"],
    ["api.acme.dev:0"],
    ["api.acme.dev:70000"],
    ["*.10.0.0"],
    ["user@api.acme.dev"],
    [f"h{i}.acme.dev" for i in range(51)],
]


@pytest.fixture
def version(people, teams):
    tool = ToolFactory(slug="acme-cli", status="approved", owner_team=teams["platform"], proposed_by=people["alice"])
    return ToolVersionFactory(tool=tool, version="1.0.0", egress_hosts=["api.acme.dev"])


def state(version: ToolVersion):
    return list(ToolVersion.objects.get(pk=version.pk).egress_hosts), AuditEvent.objects.count()


# --- API ----------------------------------------------------------------------------------------
def test_versions_list_shows_egress_hosts(api, people, version):
    body = api(people["dave"]).get(URL).json()
    assert body["results"][0]["egress_hosts"] == ["api.acme.dev"]


@pytest.mark.parametrize("who", ["bob", "admin"])
def test_platform_changes_egress_hosts_and_it_is_audited(api, people, version, who):
    hosts = ["API.Acme.dev", "*.githubusercontent.com", "10.0.0.5:8443", "api.acme.dev", "[::1]:9000"]
    response = api(people[who]).patch(DETAIL, {"egress_hosts": hosts}, format="json")
    assert response.status_code == 200, response.content
    canonical = ["api.acme.dev", "*.githubusercontent.com", "10.0.0.5:8443", "[::1]:9000"]
    assert response.json()["egress_hosts"] == canonical and response.json()["version"] == "1.0.0"
    assert ToolVersion.objects.get(pk=version.pk).egress_hosts == canonical
    event = AuditEvent.objects.get(verb="tool_version.changed")
    assert event.actor_repr == who and event.target_repr == "acme-cli"
    assert event.payload == {
        "version": "1.0.0",
        "changes": {"egress_hosts": [["api.acme.dev"], canonical]},
        "needs_review": True,
        "review_state": ["approved", "proposed"],  # what it may reach changed: it needs a new review
    }
    # the same list again changes nothing and writes nothing
    assert api(people[who]).patch(DETAIL, {"egress_hosts": canonical}, format="json").status_code == 200
    assert AuditEvent.objects.filter(verb="tool_version.changed").count() == 1
    assert api(people[who]).patch(DETAIL, {"egress_hosts": []}, format="json").json()["egress_hosts"] == []


@pytest.mark.parametrize("who", ["alice", "dave", "carol", "erin"])
def test_other_roles_are_refused_and_nothing_changes(api, people, version, who):
    """alice proposed the tool (she may edit it while proposed), but opening the network is sandbox policy."""
    AITool.objects.filter(pk=version.tool_id).update(status="proposed")
    before = state(version)
    response = api(people[who]).patch(DETAIL, {"egress_hosts": ["*.evil.example"]}, format="json")
    assert response.status_code == 403
    assert state(version) == before
    assert api().patch(DETAIL, {"egress_hosts": ["*.evil.example"]}, format="json").status_code == 401


@pytest.mark.parametrize("hosts", BAD)
def test_bad_patterns_are_a_400_with_field_errors(api, people, version, hosts):
    before = state(version)
    response = api(people["bob"]).patch(DETAIL, {"egress_hosts": hosts}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["egress_hosts"]
    assert state(version) == before


@pytest.mark.parametrize(
    "body", [{"egress_hosts": "api.acme.dev"}, {"egress_hosts": [1]}, {}, {"egress_hosts": [], "version": "2"}]
)
def test_malformed_bodies_are_400(api, people, version, body):
    before = state(version)
    assert api(people["bob"]).patch(DETAIL, body, format="json").status_code == 400
    assert state(version) == before


def test_unknown_version_or_tool_is_404(api, people, version):
    assert api(people["bob"]).patch(URL + "9.9/", {"egress_hosts": []}, format="json").status_code == 404
    url = "/api/v1/tools/nope/versions/1.0.0/"
    assert api(people["bob"]).patch(url, {"egress_hosts": []}, format="json").status_code == 404


def test_egress_hosts_set_when_adding_a_version(api, people, version):
    ok = api(people["bob"]).post(
        URL,
        {"version": "2.0", "launch_command": ["acme", "{prompt}"], "egress_hosts": ["*.Acme.dev", "*.acme.dev"]},
        format="json",
    )
    assert ok.status_code == 201, ok.content
    assert ok.json()["egress_hosts"] == ["*.acme.dev"]
    assert AuditEvent.objects.get(verb="tool_version.proposed").payload["egress_hosts"] == ["*.acme.dev"]
    bad = api(people["bob"]).post(
        URL, {"version": "3.0", "launch_command": ["acme", "{prompt}"], "egress_hosts": ["http://x.dev"]}, format="json"
    )
    assert bad.status_code == 400 and "egress_hosts" in bad.json()
    assert not ToolVersion.objects.filter(version="3.0").exists()


def test_a_proposer_adds_versions_but_not_egress_hosts(api, people, version):
    AITool.objects.filter(pk=version.tool_id).update(status="proposed")
    body = {"version": "2.0", "launch_command": ["acme", "{prompt}"]}
    refused = api(people["alice"]).post(URL, {**body, "egress_hosts": ["*.evil.example"]}, format="json")
    assert refused.status_code == 403 and not ToolVersion.objects.filter(version="2.0").exists()
    ok = api(people["alice"]).post(URL, body, format="json")
    assert ok.status_code == 201 and ok.json()["egress_hosts"] == []


def test_service_refuses_a_developer_directly(people, version):
    with pytest.raises(tool_services.NotPermitted):
        tool_versions.tool_version_update(version=version, actor=people["alice"], egress_hosts=["x.dev"])


# --- pages --------------------------------------------------------------------------------------
def test_detail_shows_hosts_and_the_edit_link_to_platform_only(client, people, version):
    for who, link in (("bob", True), ("admin", True), ("alice", False), ("erin", False)):
        client.force_login(people[who])
        page = client.get("/tools/acme-cli/").content.decode()
        assert "<code>api.acme.dev</code>" in page
        assert (f'href="{PAGE}"' in page) == link, who


def test_platform_edits_egress_hosts_on_the_page(client, people, version):
    client.force_login(people["bob"])
    page = client.get(PAGE)
    assert page.status_code == 200 and "api.acme.dev</textarea>" in page.content.decode()
    response = client.post(
        PAGE, {"egress_hosts": "api.acme.dev\n\n  *.Acme.dev:8443 \r\n127.0.0.1:8080\n"}, follow=True
    )
    assert response.redirect_chain == [("/tools/acme-cli/", 302)]
    assert "Egress hosts of Acme Cli 1.0.0 saved." in response.content.decode()
    after = ["api.acme.dev", "*.acme.dev:8443", "127.0.0.1:8080"]
    assert ToolVersion.objects.get(pk=version.pk).egress_hosts == after
    event = AuditEvent.objects.get(verb="tool_version.changed")
    assert event.actor_repr == "bob" and event.payload["changes"]["egress_hosts"] == [["api.acme.dev"], after]
    again = client.post(PAGE, {"egress_hosts": "\n".join(after)}, follow=True)
    assert "Nothing changed." in again.content.decode()
    assert AuditEvent.objects.filter(verb="tool_version.changed").count() == 1


def test_bad_pattern_on_the_page_shows_a_field_error(client, people, version):
    client.force_login(people["admin"])
    before = state(version)
    response = client.post(PAGE, {"egress_hosts": "ok.acme.dev\nhttps://api.acme.dev/v1"})
    assert response.status_code == 400
    errors = response.content.decode().split('id="id_egress_hosts_errors"', 1)
    assert len(errors) == 2 and "Entry 2" in errors[1].split("</ul>", 1)[0]
    assert state(version) == before


def test_page_refuses_other_roles_and_unknown_versions(client, people, version):
    before = state(version)
    for who in ("alice", "dave", "carol", "erin"):
        client.force_login(people[who])
        assert client.get(PAGE).status_code == 403, who
        assert client.post(PAGE, {"egress_hosts": "*.evil.example"}).status_code == 403, who
    assert state(version) == before
    client.force_login(people["bob"])
    assert client.get("/tools/acme-cli/versions/9.9/edit/").status_code == 404
    client.logout()
    assert client.get(PAGE).status_code == 302


def test_add_version_page_offers_egress_hosts_to_platform_only(client, people, version):
    client.force_login(people["bob"])
    assert 'name="egress_hosts"' in client.get("/tools/acme-cli/versions/new/").content.decode()
    response = client.post(
        "/tools/acme-cli/versions/new/",
        {"version": "2.0", "launch_command": "acme\n{prompt}", "egress_hosts": "*.acme.dev\napi.acme.dev:8443"},
    )
    assert response.status_code == 302
    assert ToolVersion.objects.get(version="2.0").egress_hosts == ["*.acme.dev", "api.acme.dev:8443"]
    bad = client.post(
        "/tools/acme-cli/versions/new/", {"version": "3.0", "launch_command": "acme\n{prompt}", "egress_hosts": "a b"}
    )
    assert bad.status_code == 400 and 'id="id_egress_hosts_errors"' in bad.content.decode()
    # the proposer of a proposed tool adds versions without the field (and cannot sneak it in)
    AITool.objects.filter(pk=version.tool_id).update(status="proposed")
    client.force_login(people["alice"])
    assert 'name="egress_hosts"' not in client.get("/tools/acme-cli/versions/new/").content.decode()
    client.post(
        "/tools/acme-cli/versions/new/",
        {"version": "4.0", "launch_command": "acme\n{prompt}", "egress_hosts": "*.evil.example"},
    )
    assert ToolVersion.objects.get(version="4.0").egress_hosts == []
