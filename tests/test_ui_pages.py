"""The navigation and the forms of every page, as each role sees them (issue 14): the governance pages sit in one
menu and the simulator and out-of-policy pages are linked to whoever may use them; no link leads to a 403;
every input has a label; the new-team form is laid out like every other form."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.test import Client

from catalog.models import Repository
from catalog.policy import REASON_CODES
from tests.factories import PASSWORD
from tests.ui_world import build_world

pytestmark = pytest.mark.django_db
ROLES = ("alice", "bob", "carol", "erin", "admin")


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


class Controls(HTMLParser):
    """The form controls of a page and whether each has a label a screen reader announces: a <label for>, a
    wrapping <label>, aria-label or aria-labelledby. Hidden inputs and buttons need none."""

    UNLABELLED_TYPES = {"hidden", "submit", "button", "reset", "image"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.label_depth = 0
        self.label_for: set[str] = set()
        self.controls: list[dict] = []
        self.nav_links: list[tuple[str, bool]] = []  # (href, inside the Governance menu)
        self._in_menu = 0
        self._in_nav = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "label":
            self.label_depth += 1
            if a.get("for"):
                self.label_for.add(a["for"])
        elif tag in ("input", "select", "textarea"):
            kind = (a.get("type") or "text").lower() if tag == "input" else tag
            if kind not in self.UNLABELLED_TYPES:
                self.controls.append(
                    {
                        "tag": tag,
                        "name": a.get("name"),
                        "id": a.get("id"),
                        "wrapped": self.label_depth > 0,
                        "aria": bool(a.get("aria-label") or a.get("aria-labelledby")),
                    }
                )
        elif tag == "nav" and a.get("aria-label") == "Main":
            self._in_nav += 1
        elif tag == "details" and "data-nav-menu" in a:
            self._in_menu += 1
        elif tag == "a" and self._in_nav:
            self.nav_links.append((a.get("href"), self._in_menu > 0))

    def handle_endtag(self, tag):
        if tag == "label":
            self.label_depth = max(0, self.label_depth - 1)
        elif tag == "details" and self._in_menu:
            self._in_menu -= 1
        elif tag == "nav" and self._in_nav:
            self._in_nav -= 1

    def unlabelled(self) -> list[str]:
        return [
            f"<{c['tag']} name={c['name']!r} id={c['id']!r}>"
            for c in self.controls
            if not (c["wrapped"] or c["aria"] or (c["id"] and c["id"] in self.label_for))
        ]


def parse(html: str) -> Controls:
    parser = Controls()
    parser.feed(html)
    return parser


@pytest.fixture
def world(people, teams, tmp_path):
    return build_world(people, teams, tmp_path)


def catalog_pages(world) -> list[str]:
    """Every page rendered from catalog/templates/catalog (workspace pages are another feature's)."""
    group_id = world.record.group_id
    return [
        "/",
        "/?q=aider&status=approved",
        "/tools/new/",
        "/tools/aider/",
        "/tools/cursor/",
        "/tools/zed/",
        "/tools/aider/edit/",
        "/tools/aider/versions/new/",
        "/tools/aider/versions/0.80.0/edit/",
        "/reviews/",
        "/teams/",
        "/teams/payments/",
        "/teams/platform/",
        "/audit/",
        "/access-requests/",
        "/authz/simulator/",
        "/out-of-policy/",
        "/reports/adoption/",
        "/agents/",
        f"/agents/{group_id}/",
        "/provenance/",
        f"/provenance/?commit={world.record.commit_sha}",
        "/vendor-keys/",
        "/repositories/",
        f"/repositories/{Repository.objects.get().slug}/edit/",
    ]


@pytest.mark.parametrize("username", ROLES)
def test_every_input_has_a_label(world, people, username):
    client = signed_in(people[username])
    problems = {}
    for path in catalog_pages(world):
        r = client.get(path)
        if r.status_code != 200:
            assert r.status_code in (403, 404), (path, r.status_code)
            continue
        missing = parse(r.content.decode()).unlabelled()
        if missing:
            problems[path] = missing
    assert not problems, f"inputs without a label as {username}: {problems}"


def test_every_page_title_is_plain_text(world, people):
    """The browser tab shows `<page> · Goldpath`: a title block never swallows the page's markup."""
    client = signed_in(people["admin"])
    for path in catalog_pages(world):
        r = client.get(path)
        if r.status_code != 200 or "html" not in r["Content-Type"]:
            continue
        title = re.search(r"<title>(.*?)</title>", r.content.decode(), re.S).group(1)
        assert "<" not in title and len(title) < 120, (path, title[:200])


GOVERNANCE = {
    "alice": {"/access-requests/", "/out-of-policy/", "/authz/simulator/"},
    "carol": {"/access-requests/", "/out-of-policy/", "/authz/simulator/", "/reports/adoption/"},
    "erin": {"/access-requests/", "/out-of-policy/", "/authz/simulator/", "/reports/adoption/", "/audit/"},
    "bob": {
        "/reviews/",
        "/access-requests/",
        "/out-of-policy/",
        "/authz/simulator/",
        "/reports/adoption/",
        "/vendor-keys/",
        "/audit/",
    },
}
GOVERNANCE["admin"] = GOVERNANCE["bob"] | {"/sso/mappings/"}


@pytest.mark.parametrize("username", ROLES)
def test_the_governance_menu_links_what_the_role_may_open(world, people, username):
    client = signed_in(people[username])
    page = parse(client.get("/").content.decode())
    in_menu = {href for href, menu in page.nav_links if menu}
    outside = {href for href, menu in page.nav_links if not menu}
    assert in_menu == GOVERNANCE[username]
    assert not in_menu & outside and "/provenance/" in outside and "/" in outside
    for href in in_menu | outside:  # no link leads to a refusal
        if href.startswith("/api/"):
            continue
        assert client.get(href).status_code == 200, href


def test_the_menu_marks_the_current_page(world, people):
    client = signed_in(people["bob"])
    html = client.get("/authz/simulator/").content.decode()
    assert '<summary class="current">Governance</summary>' in html
    assert 'href="/authz/simulator/" aria-current="page">Policy simulator' in html
    assert '<summary class="current">' not in client.get("/teams/").content.decode()


def test_the_new_team_form_is_a_styled_form_with_its_errors(people, teams):
    client = signed_in(people["admin"])
    html = client.get("/teams/").content.decode()
    assert 'class="stack"' in html and 'for="id_name"' in html and 'for="id_slug"' in html
    r = client.post("/teams/new/", {"name": "Data", "slug": "Not a slug!"})
    assert r.status_code == 400
    html = r.content.decode()
    assert "The team was not created" in html and 'class="field has-error"' in html and 'value="Data"' in html


APPROVE_BUTTON = 'hx-post="/reviews/{slug}/approve/"'


def test_the_review_queue_offers_approve_only_to_who_may_approve(people, teams):
    from catalog.models import AITool
    from tests.factories import ToolFactory

    ToolFactory(slug="mine", name="Mine", status="in_review", proposed_by=people["bob"])
    ToolFactory(slug="risky", name="Risky", status="in_review", risk_tier="high")
    client = signed_in(people["bob"])
    queue = client.get("/reviews/").content.decode()
    assert APPROVE_BUTTON.format(slug="risky") in queue  # bob may approve this one
    assert APPROVE_BUTTON.format(slug="mine") not in queue  # bob proposed it: another engineer must approve
    # bob records the first of two approvals: the row that comes back has no Approve button for him any more
    row = client.post("/reviews/risky/approve/", {"reason": "Reviewed the DPA."}, HTTP_HX_REQUEST="true")
    html = row.content.decode()
    assert "Approval recorded (1 of 2)" in html and AITool.objects.get(slug="risky").status == "in_review"
    assert APPROVE_BUTTON.format(slug="risky") not in html and "Reject" in html
    assert APPROVE_BUTTON.format(slug="risky") in signed_in(people["frank"]).get("/reviews/").content.decode()


class VisibleText(HTMLParser):
    """The text a person reads: text nodes outside <script>, <style> and <template>."""

    HIDDEN = {"script", "style", "template"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag in self.HIDDEN and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if not self.depth and data.strip():
            self.parts.append(data.strip())


RAW = re.compile(
    r"\[\s*'|\{\s*'|\bowner_team\b|\baitool\b|\baccessgrant\b|\baccessrequest\b|\b(" + "|".join(REASON_CODES) + r")\b"
)


@pytest.mark.parametrize("username", ROLES)
def test_no_page_shows_a_repr_an_id_or_a_code(world, people, username):
    """`['bob', 'frank']`, `owner_team: 1`, `no_grant`, `aitool`: nowhere in what a page says."""
    client = signed_in(people[username])
    pages = [*catalog_pages(world), "/tools/cline/", "/tools/leaky/", "/audit/?target=cline", "/teams/payments/"]
    found = {}
    for path in pages:
        r = client.get(path)
        if r.status_code != 200:
            continue
        parser = VisibleText()
        parser.feed(r.content.decode())
        hits = sorted({m.group(0) for part in parser.parts for m in RAW.finditer(part)})
        if hits:
            found[path] = hits
    assert not found, f"raw values shown to {username}: {found}"
