"""Tool version fields and their review: every version starts proposed; it runs once approved (with its tool when
the tool's review completes, otherwise by `required_approvals` platform engineers other than its authors); a change
to what it runs sends it back to review. Through the API and the pages, with the audit trail and the 400s."""

from __future__ import annotations

import pytest

from catalog.models import AITool, AuditEvent, ToolVersion, ToolVersionApproval
from catalog.services import tool_versions
from catalog.services import tools as tool_services
from tests.factories import PASSWORD, ToolFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/tools/acme-cli/versions/"
CLAUDE = {
    "version": "2.1.332",
    "runtime": {"kind": "npm", "package": "@anthropic-ai/claude-code", "version": "2.1.332"},
    "launch_command": ["claude", "-p", "{prompt}", "--model", "{model}", "--output-format", "stream-json"],
    "env": {"DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "8000"},
    "models": ["claude-sonnet-4-5", "claude-opus-4-1"],
    "usage_format": "claude-stream-json",
    "egress_hosts": ["api.acme.dev"],
}


@pytest.fixture
def tool(teams, people):
    return ToolFactory(slug="acme-cli", name="Acme CLI", status="approved", owner_team=teams["platform"])


def state(version_id: int):
    v = ToolVersion.objects.get(pk=version_id)
    approvals = sorted(ToolVersionApproval.objects.filter(version=v).values_list("reviewer__username", flat=True))
    return v.review_state, approvals, v.launch_command, v.env, AuditEvent.objects.count()


def propose(api, who, body=None, url=URL):
    response = api(who).post(url, body or CLAUDE, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


# --- the workflow through the API ------------------------------------------------------------------


def test_propose_approve_change_and_approve_again(api, people, tool):
    body = propose(api, people["bob"])
    assert (body["review_state"], body["proposed_by"], body["approvals"]) == ("proposed", "bob", [])
    assert body["approvals_required"] == 1 and body["reviewed_at"] is None
    event = AuditEvent.objects.get(verb="tool_version.proposed")
    assert event.actor_repr == "bob" and event.target_repr == "acme-cli" and event.payload["version"] == "2.1.332"
    assert event.payload["runtime"] == CLAUDE["runtime"] and event.payload["with_tool"] is False
    approve = URL + "2.1.332/approve/"
    vid = body["id"]
    before = state(vid)
    # the proposer may not approve his own version, nor may a developer, a manager or an auditor
    own = api(people["bob"]).post(approve, {"reason": "lgtm"}, format="json")
    assert own.status_code == 403 and "proposed" in own.json()["detail"]
    for who in ("alice", "carol", "erin"):
        assert api(people[who]).post(approve, {"reason": "x"}, format="json").status_code == 403, who
    assert api().post(approve, {}, format="json").status_code == 401
    assert state(vid) == before
    # frank approves: one approval is enough for a medium-risk tool
    ok = api(people["frank"]).post(approve, {"reason": "pinned release checked"}, format="json")
    assert ok.status_code == 200, ok.content
    data = ok.json()
    assert (data["review_state"], data["approvals"], data["complete"], data["approvals_collected"]) == (
        "approved",
        ["frank"],
        True,
        1,
    )
    assert data["reviewed_at"] and data["review_reason"] == "pinned release checked"
    event = AuditEvent.objects.get(verb="tool_version.approved")
    assert event.actor_repr == "frank" and event.payload["complete"] is True and event.payload["to"] == "approved"
    again = api(people["frank"]).post(approve, {}, format="json")
    assert again.status_code == 409
    # bob changes the argv: the version is proposed again and its approval is gone
    argv = ["claude", "-p", "{prompt}", "--model", "{model}"]
    changed = api(people["bob"]).patch(URL + "2.1.332/", {"launch_command": argv}, format="json")
    assert changed.status_code == 200, changed.content
    assert (changed.json()["review_state"], changed.json()["approvals"]) == ("proposed", [])
    assert changed.json()["argv"] == argv == changed.json()["launch_command"]
    event = AuditEvent.objects.filter(verb="tool_version.changed").get()
    assert event.payload["changes"] == {"launch_command": [CLAUDE["launch_command"], argv]}
    assert event.payload["review_state"] == ["approved", "proposed"] and event.payload["approvals_cleared"] == 1
    # frank did not write it: he approves again
    assert api(people["frank"]).post(approve, {"reason": "ok"}, format="json").json()["review_state"] == "approved"


def test_whoever_changed_it_may_not_approve_it(api, people, tool):
    propose(api, people["bob"])
    assert api(people["frank"]).post(URL + "2.1.332/approve/", {}, format="json").status_code == 200
    r = api(people["frank"]).patch(URL + "2.1.332/", {"env": {"DISABLE_AUTOUPDATER": "0"}}, format="json")
    assert r.json()["review_state"] == "proposed"
    refused = api(people["frank"]).post(URL + "2.1.332/approve/", {}, format="json")
    assert refused.status_code == 403 and "changed" in refused.json()["detail"]
    assert api(people["bob"]).post(URL + "2.1.332/approve/", {}, format="json").status_code == 403
    ok = api(people["admin"]).post(URL + "2.1.332/approve/", {}, format="json")
    assert ok.status_code == 200 and ok.json()["approvals"] == ["admin"]


def test_non_reviewed_fields_change_without_a_new_review(api, people, tool):
    propose(api, people["bob"])
    api(people["frank"]).post(URL + "2.1.332/approve/", {}, format="json")
    r = api(people["bob"]).patch(
        URL + "2.1.332/", {"release_notes_url": "https://acme.dev/notes", "usage_format": "none"}, format="json"
    )
    assert r.status_code == 200 and r.json()["review_state"] == "approved" and r.json()["approvals"] == ["frank"]
    # the same values again change nothing and write nothing
    count = AuditEvent.objects.count()
    same = api(people["bob"]).patch(URL + "2.1.332/", {"models": CLAUDE["models"]}, format="json")
    assert same.json()["review_state"] == "approved" and AuditEvent.objects.count() == count


def test_high_risk_needs_two_distinct_approvers(api, people, tool):
    AITool.objects.filter(pk=tool.pk).update(risk_tier="high")
    body = propose(api, people["bob"])
    approve = URL + "2.1.332/approve/"
    first = api(people["frank"]).post(approve, {"reason": "one"}, format="json").json()
    assert (first["review_state"], first["approvals_collected"], first["approvals_required"], first["complete"]) == (
        "proposed",
        1,
        2,
        False,
    )
    assert api(people["frank"]).post(approve, {}, format="json").status_code == 409
    second = api(people["admin"]).post(approve, {"reason": "two"}, format="json").json()
    assert second["review_state"] == "approved" and sorted(second["approvals"]) == ["admin", "frank"]
    assert ToolVersion.objects.get(pk=body["id"]).reviewed_at is not None


def test_reject_needs_a_reason_and_a_rejected_version_is_final_until_changed(api, people, tool):
    propose(api, people["bob"])
    reject = URL + "2.1.332/reject/"
    vid = ToolVersion.objects.get().pk
    before = state(vid)
    assert api(people["alice"]).post(reject, {"reason": "no"}, format="json").status_code == 403
    missing = api(people["frank"]).post(reject, {}, format="json")
    assert missing.status_code == 400 and "reason" in missing.json()
    assert state(vid) == before
    ok = api(people["frank"]).post(reject, {"reason": "unsigned release"}, format="json")
    assert ok.status_code == 200 and ok.json()["review_state"] == "rejected"
    assert ok.json()["review_reason"] == "unsigned release"
    assert AuditEvent.objects.get(verb="tool_version.rejected").payload["reason"] == "unsigned release"
    assert api(people["frank"]).post(reject, {"reason": "again"}, format="json").status_code == 409
    assert api(people["frank"]).post(URL + "2.1.332/approve/", {}, format="json").status_code == 409
    # fixing what it runs proposes it again
    fixed = {"runtime": {**CLAUDE["runtime"], "version": "2.1.333"}}
    assert api(people["bob"]).patch(URL + "2.1.332/", fixed, format="json").json()["review_state"] == "proposed"


def test_an_approved_version_can_be_withdrawn(api, people, tool):
    propose(api, people["bob"])
    api(people["frank"]).post(URL + "2.1.332/approve/", {}, format="json")
    r = api(people["admin"]).post(URL + "2.1.332/reject/", {"reason": "CVE in this release"}, format="json")
    assert r.json()["review_state"] == "rejected" and r.json()["approvals"] == []


def test_versions_of_a_tool_in_review_are_approved_with_the_tool(api, people, teams):
    tool = ToolFactory(slug="acme-cli", name="Acme CLI", status="proposed", proposed_by=people["alice"])
    alices = propose(api, people["alice"], {"version": "1.0.0", "launch_command": ["acme", "{prompt}"]})
    assert alices["review_state"] == "proposed"
    bobs = propose(api, people["bob"], {"version": "1.1.0", "launch_command": ["acme", "{prompt}"]})
    # a version of a tool in review is not approved on its own
    early = api(people["frank"]).post(URL + "1.0.0/approve/", {}, format="json")
    assert early.status_code == 409 and "together with the tool" in early.json()["detail"]
    tool_services.tool_request_review(tool=tool, actor=people["alice"])
    tool_services.tool_approve(tool=AITool.objects.get(pk=tool.pk), actor=people["bob"], reason="DPA signed")
    listing = {v["version"]: v for v in api(people["erin"]).get(URL).json()["results"]}
    assert (listing["1.0.0"]["review_state"], listing["1.0.0"]["approvals"]) == ("approved", ["bob"])
    # bob wrote 1.1.0: his approval of the tool does not approve it; frank does
    assert listing["1.1.0"]["review_state"] == "proposed"
    assert api(people["frank"]).post(URL + "1.1.0/approve/", {}, format="json").json()["review_state"] == "approved"
    event = AuditEvent.objects.get(verb="tool_version.approved", payload__version="1.0.0")
    assert event.payload["with_tool"] is True and event.payload["approvers"] == ["bob"]
    assert ToolVersion.objects.get(pk=bobs["id"]).review_state == "approved"


# --- what the versions API shows --------------------------------------------------------------------


def test_versions_list_and_detail_show_every_field(api, people, tool):
    propose(api, people["bob"])
    api(people["frank"]).post(URL + "2.1.332/approve/", {"reason": "ok"}, format="json")
    listed = api(people["dave"]).get(URL).json()["results"][0]
    detail = api(people["dave"]).get(URL + "2.1.332/").json()
    assert listed == detail
    expected = {
        "version": "2.1.332",
        "runtime": CLAUDE["runtime"],
        "launch_command": CLAUDE["launch_command"],
        "argv": CLAUDE["launch_command"],
        "env": CLAUDE["env"],
        "egress_hosts": ["api.acme.dev"],
        "models": CLAUDE["models"],
        "usage_format": "claude-stream-json",
        "review_state": "approved",
        "approvals": ["frank"],
        "approvals_required": 1,
        "proposed_by": "bob",
        "review_reason": "ok",
    }
    assert {k: listed[k] for k in expected} == expected
    assert listed["reviewed_at"] and listed["created_at"] and "release_notes_url" in listed
    assert api(people["dave"]).get(URL + "9.9.9/").status_code == 404


def test_model_names_is_still_accepted(api, people, tool):
    body = propose(api, people["bob"], {"version": "3.0.0", "launch_command": ["a", "{prompt}"], "model_names": ["m1"]})
    assert body["models"] == ["m1"]
    both = api(people["bob"]).post(
        URL,
        {"version": "3.0.1", "launch_command": ["a", "{prompt}"], "models": ["a"], "model_names": ["b"]},
        format="json",
    )
    assert both.status_code == 400 and both.json()["models"] == ["Give models or model_names, not both."]


# --- validation ---------------------------------------------------------------------------------------


def npm(version="2.1.332", package="@anthropic-ai/claude-code", **extra):
    return {"kind": "npm", "package": package, "version": version, **extra}


BAD = [
    ("runtime", {"runtime": npm("--registry=http://evil")}),
    ("runtime", {"runtime": npm("^2.1.0")}),
    ("runtime", {"runtime": npm(">=2.1.0")}),
    ("runtime", {"runtime": npm("2.1.x")}),
    ("runtime", {"runtime": npm("latest")}),
    ("runtime", {"runtime": npm("https://evil.example/claude.tgz")}),
    ("runtime", {"runtime": npm("file:../../evil")}),
    ("runtime", {"runtime": npm("2.1.332 --registry http://evil")}),
    ("runtime", {"runtime": npm(package="--registry=http://evil")}),
    ("runtime", {"runtime": npm(package="../evil")}),
    ("runtime", {"runtime": npm(package="git+https://evil.example/x.git")}),
    ("runtime", {"runtime": npm(package="@Anthropic/Claude")}),
    ("runtime", {"runtime": npm(registry="http://evil")}),
    ("runtime", {"runtime": {"kind": "apt", "package": "curl", "version": "1.0"}}),
    ("runtime", {"runtime": {"kind": "pypi", "package": "aider-chat[playwright]", "version": "0.86.1"}}),
    ("runtime", {"runtime": {"kind": "pypi", "package": "aider-chat", "version": "==0.86.1"}}),
    ("runtime", {"runtime": {"kind": "pypi", "package": "aider-chat", "version": "-e ."}}),
    ("runtime", {"runtime": "npm:@anthropic-ai/claude-code@2.1.332"}),
    ("env", {"env": {"ANTHROPIC_API_KEY": "sk-ant-xxx"}}),
    ("env", {"env": {"LD_PRELOAD": "/tmp/evil.so"}}),
    ("env", {"env": {"PATH": "/tmp"}}),
    ("env", {"env": {"HOME": "/"}}),
    ("env", {"env": {"PYTHONPATH": "/workspace"}}),
    ("env", {"env": {"NODE_OPTIONS": "--require /workspace/x.js"}}),
    ("env", {"env": {"GITHUB_TOKEN": "ghp_x"}}),
    ("env", {"env": {"ANTHROPIC_BASE_URL": "https://evil.example"}}),
    ("env", {"env": {"OPENAI_API_BASE": "https://evil.example"}}),
    ("env", {"env": {"GOLDPATH_GATEWAY": "x"}}),
    ("env", {"env": {"HTTPS_PROXY": "http://evil:3128"}}),
    ("env", {"env": {"https_proxy": "http://evil:3128"}}),
    ("env", {"env": {"no_proxy": "*"}}),
    ("env", {"env": {"lower_case": "1"}}),
    ("env", {"env": {"BIG": "x" * 4097}}),
    ("env", {"env": {"NUMBER": 1}}),
    ("env", {"env": ["A=1"]}),
    ("launch_command", {"launch_command": []}),
    ("launch_command", {"launch_command": "claude -p {prompt}"}),
    ("launch_command", {"launch_command": ["claude", "-p"]}),
    ("launch_command", {"launch_command": ["claude", "{prompt}", ""]}),
    ("launch_command", {"launch_command": ["claude", "{prompt}", "{api_key}"]}),
    ("launch_command", {"launch_command": ["/bin/sh", "-c", "claude {prompt}"]}),
    ("models", {"models": ["claude sonnet"]}),
    ("models", {"models": "claude-sonnet-4-5"}),
    ("models", {"models": []}),  # a version with a runtime names at least one model
    ("usage_format", {"usage_format": "xml"}),
    ("egress_hosts", {"egress_hosts": ["https://api.acme.dev"]}),
    ("version", {"version": "2.1.x"}),
    ("version", {"version": "../2"}),
    # `$` in a pattern also matches before a final newline: every grammar ends at the very end
    ("runtime", {"runtime": npm("2.1.332\n")}),
    ("runtime", {"runtime": npm(package="@anthropic-ai/claude-code\n")}),
    ("models", {"models": ["claude-sonnet-4-5\n"]}),
    ("env", {"env": {"DEBUG\n": "1"}}),
]


@pytest.mark.parametrize(("field", "change"), BAD, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD)])
def test_bad_fields_are_400_with_the_field_named_and_nothing_created(api, people, tool, field, change):
    before = (ToolVersion.objects.count(), AuditEvent.objects.count())
    response = api(people["bob"]).post(URL, {**CLAUDE, **change}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert (ToolVersion.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.parametrize(("field", "change"), [b for b in BAD if b[0] != "version"][::3])
def test_bad_changes_are_400_and_change_nothing(api, people, tool, field, change):
    propose(api, people["bob"])
    vid = ToolVersion.objects.get().pk
    before = state(vid)
    response = api(people["bob"]).patch(URL + "2.1.332/", change, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert state(vid) == before


def test_good_runtimes_env_and_placeholders_are_kept(api, people, tool):
    body = propose(
        api,
        people["bob"],
        {
            "version": "0.86.1",
            "runtime": {"kind": "pypi", "package": "aider-chat", "version": "0.86.1"},
            "launch_command": ["aider", "--model", "{model}", "--message", "{prompt}", "--index={index}"],
            "env": {"AIDER_ANALYTICS": "false"},
            "models": ["openai/gpt-5", "anthropic/claude-sonnet-4-5:thinking"],
            "usage_format": "aider-text",
        },
    )
    assert body["runtime"]["package"] == "aider-chat" and body["models"][1] == "anthropic/claude-sonnet-4-5:thinking"
    prerelease = propose(api, people["bob"], {**CLAUDE, "version": "3.0.0-beta.1", "runtime": npm("3.0.0-beta.1")})
    assert prerelease["runtime"]["version"] == "3.0.0-beta.1"


def test_unknown_fields_and_the_version_name_cannot_be_patched(api, people, tool):
    propose(api, people["bob"])
    assert api(people["bob"]).patch(URL + "2.1.332/", {"version": "9"}, format="json").status_code == 400
    assert api(people["bob"]).patch(URL + "2.1.332/", {"argv": ["x"]}, format="json").status_code == 400
    assert api(people["bob"]).patch(URL + "2.1.332/", {}, format="json").status_code == 400


def test_service_refuses_directly(people, tool):
    version = tool_versions.tool_version_add(tool=tool, actor=people["bob"], data=dict(CLAUDE))
    with pytest.raises(tool_versions.NotPermitted):
        tool_versions.tool_version_approve(version=version, actor=people["alice"])
    with pytest.raises(tool_versions.InvalidInput):
        tool_versions.tool_version_update(version=version, actor=people["bob"], data={"env": {"LD_AUDIT": "x"}})


# --- pages ------------------------------------------------------------------------------------------


def test_tool_page_shows_review_state_and_buttons_to_who_may_act(client, people, tool, api):
    AITool.objects.filter(pk=tool.pk).update(risk_tier="high")
    propose(api, people["bob"])
    api(people["frank"]).post(URL + "2.1.332/approve/", {"reason": "one"}, format="json")
    page = login(client, people["admin"]).get("/tools/acme-cli/").content.decode()
    assert "2.1.332" in page and "Proposed" in page and "1 of 2 approvals: frank" in page
    assert "@anthropic-ai/claude-code@2.1.332" in page and "DISABLE_AUTOUPDATER=1" in page
    assert "Approve 2.1.332" in page and "Reject 2.1.332" in page
    client.logout()
    page = login(client, people["bob"]).get("/tools/acme-cli/").content.decode()
    assert "Approve 2.1.332" not in page and "You proposed acme-cli 2.1.332" in page
    client.logout()
    page = login(client, people["frank"]).get("/tools/acme-cli/").content.decode()
    assert "Approve 2.1.332" not in page and "You approved it" in page
    client.logout()
    page = login(client, people["alice"]).get("/tools/acme-cli/").content.decode()
    assert "Proposed" in page and "Approve 2.1.332" not in page and "Reject 2.1.332" not in page
    assert client.post("/tools/acme-cli/versions/2.1.332/approve/", {"reason": "x"}).status_code == 403
    client.logout()
    # admin approves on the page: the second approval completes it
    login(client, people["admin"])
    missing = client.post("/tools/acme-cli/versions/2.1.332/approve/", {"reason": ""}, follow=True)
    assert "Give a reason" in missing.content.decode()
    assert ToolVersion.objects.get().review_state == "proposed"
    done = client.post("/tools/acme-cli/versions/2.1.332/approve/", {"reason": "second look"}, follow=True)
    assert "is approved; agents may run it" in done.content.decode()
    assert ToolVersion.objects.get().review_state == "approved"
    assert "approved version" in client.get("/tools/acme-cli/").content.decode()  # the decision history


def test_review_queue_lists_proposed_versions(client, people, tool, api):
    propose(api, people["bob"])
    page = login(client, people["frank"]).get("/reviews/").content.decode()
    assert "Proposed versions" in page and "Acme CLI 2.1.332" in page and "0 of 1" in page
    r = client.post("/tools/acme-cli/versions/2.1.332/reject/", {"reason": "not yet", "next": "/reviews/"})
    assert r.status_code == 302 and r["Location"] == "/reviews/"
    assert ToolVersion.objects.get().review_state == "rejected"
    assert "No proposed versions." in client.get("/reviews/").content.decode()


def test_add_and_edit_a_version_on_the_pages(client, people, tool):
    login(client, people["bob"])
    form = client.get("/tools/acme-cli/versions/new/").content.decode()
    assert 'name="runtime_package"' in form and 'name="env"' in form and 'name="usage_format"' in form
    data = {
        "version": "2.1.332",
        "runtime_kind": "npm",
        "runtime_package": "@anthropic-ai/claude-code",
        "runtime_version": "2.1.332",
        "launch_command": "claude\n-p\n{prompt}\n--model\n{model}",
        "model_names": "claude-sonnet-4-5, claude-opus-4-1",
        "env": "DISABLE_AUTOUPDATER=1\n",
        "usage_format": "claude-stream-json",
    }
    bad = client.post("/tools/acme-cli/versions/new/", {**data, "env": "ANTHROPIC_API_KEY=sk-ant-x"})
    assert bad.status_code == 400 and 'id="id_env_errors"' in bad.content.decode()
    evil = client.post("/tools/acme-cli/versions/new/", {**data, "runtime_version": "--registry=http://evil"})
    errors = evil.content.decode().split('id="id_runtime_package_errors"', 1)
    assert evil.status_code == 400 and "not an exact npm release" in errors[1].split("</ul>", 1)[0]
    no_models = client.post("/tools/acme-cli/versions/new/", {**data, "model_names": ""})
    assert 'id="id_model_names_errors"' in no_models.content.decode()
    assert not ToolVersion.objects.exists()
    ok = client.post("/tools/acme-cli/versions/new/", data, follow=True)
    assert "proposed" in ok.content.decode()
    v = ToolVersion.objects.get()
    assert v.runtime == {"kind": "npm", "package": "@anthropic-ai/claude-code", "version": "2.1.332"}
    assert v.env == {"DISABLE_AUTOUPDATER": "1"} and v.model_names == ["claude-sonnet-4-5", "claude-opus-4-1"]
    assert (v.review_state, v.usage_format, v.created_by) == ("proposed", "claude-stream-json", people["bob"])
    ToolVersion.objects.filter(pk=v.pk).update(review_state="approved")
    # the edit page is filled from the version; changing the argv sends it back to review
    page = client.get("/tools/acme-cli/versions/2.1.332/edit/").content.decode()
    assert "DISABLE_AUTOUPDATER=1</textarea>" in page and 'value="@anthropic-ai/claude-code"' in page
    edit = {**data, "launch_command": "claude\n-p\n{prompt}"}
    edit.pop("version")
    saved = client.post("/tools/acme-cli/versions/2.1.332/edit/", edit, follow=True)
    assert "proposed again and needs a new review" in saved.content.decode()
    v.refresh_from_db()
    assert v.launch_command == ["claude", "-p", "{prompt}"] and v.review_state == "proposed"
    assert AuditEvent.objects.get(verb="tool_version.changed").payload["needs_review"] is True
