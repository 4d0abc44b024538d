"""Audit verbs in one tense (the past: a record of something that happened) and the audit page shows them, and
their targets, as words with links reversed from the URL conf (issue 14)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import catalog
from catalog.services import tool_actions
from catalog.services import tools as tool_services
from tests.factories import ToolFactory

ROOT = Path(catalog.__file__).parent
# the last word of a verb's action, in the past tense: regular (-ed) or one of these
IRREGULAR_PAST = {"sent"}  # `tool.review_warning_sent`
PARTICLES = {"in", "out", "up", "off", "down"}  # phrasal verbs: `auth.locked_out`, `auth.sso_signed_in`
# f-string verbs whose variable part is a past-tense state: `build.{status}` is written only for a build's final
# status (succeeded, failed, canceled)
FORMATTED = {"build.{}": ("succeeded", "failed", "canceled")}


def _past(verb: str) -> bool:
    _, _, action = verb.partition(".")
    words = action.split("_")
    if len(words) > 1 and words[-1] in PARTICLES:
        words = words[:-1]
    return bool(action) and (words[-1].endswith("ed") or words[-1] in IRREGULAR_PAST)


def _verbs_of(node: ast.AST) -> list[str]:
    """The verb strings an expression can produce (constants, both sides of `a if c else b`, f-string shapes)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _verbs_of(node.body) + _verbs_of(node.orelse)
    if isinstance(node, ast.JoinedStr):
        return ["".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)]
    return []  # a name (e.g. the lifecycle table's `action.verb`): checked where it is defined


def written_verbs() -> dict[str, str]:
    """Every verb literal passed to `record(verb=...)` in the app -> where."""
    found: dict[str, str] = {}
    for path in ROOT.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name != "record":
                continue
            for kw in node.keywords:
                if kw.arg == "verb":
                    for verb in _verbs_of(kw.value):
                        found[verb] = f"{path.relative_to(ROOT.parent)}:{node.lineno}"
    return found


def test_every_audit_verb_is_in_the_past_tense():
    verbs = written_verbs()
    assert len(verbs) > 40  # the scan sees the services
    expanded = set(tool_actions.VERBS)
    for verb in verbs:
        if "{}" in verb:
            assert verb in FORMATTED or verb.endswith("}_requested") or _past(verb.replace("{}", "")), verbs[verb]
            expanded.update(verb.replace("{}", state) for state in FORMATTED.get(verb, ()))
        else:
            expanded.add(verb)
    present = sorted(f"{v} ({verbs.get(v, 'catalog.services.tool_actions')})" for v in expanded if not _past(v))
    assert present == [], "audit verbs must be past tense (e.g. tool.approved): " + ", ".join(present)


def test_the_renamed_verbs_are_the_ones_written():
    from importlib import import_module

    renames = import_module("catalog.migrations.0016_audit_verbs").VERB_RENAMES
    written = set(written_verbs()) | set(tool_actions.VERBS)
    assert not set(renames) & written, "an old verb is still written"
    assert all(_past(new) for new in renames.values())


@pytest.mark.django_db
@pytest.mark.urls("tests.issue14_prefixed_urls")
def test_audit_page_links_follow_the_mount_point_and_shows_words(client, people, teams):
    tool = ToolFactory(slug="gizmo", name="Gizmo", status="in_review", proposed_by=people["alice"])
    tool_services.tool_approve(tool=tool, actor=people["bob"], reason="fine")
    from catalog.services import teams as team_services

    team_services.team_member_add(team=teams["search"], actor=people["admin"], user=people["erin"])
    client.force_login(people["erin"])
    page = client.get("/gp/audit/").content.decode()
    assert 'href="/gp/tools/gizmo/">gizmo</a>' in page and 'href="/tools/' not in page
    assert 'href="/gp/teams/search/">search</a>' in page and 'href="/teams/' not in page
    assert ">AI tool<" in page and ">aitool<" not in page  # the target type as words
    assert 'title="tool.approved">approved it<' in page and 'title="team.member_added">team member added<' in page
    assert "Reason:</span> fine" in page  # the payload as labelled text
