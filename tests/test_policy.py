"""The policy decision: every deny cause named, deny wins, banned means nobody."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from guardian.shortcuts import remove_perm

from catalog.models import AccessGrant, AIToolGroupObjectPermission
from catalog.policy import PolicyContext, decide, decide_many
from catalog.services import access
from tests.factories import ToolFactory

pytestmark = pytest.mark.django_db


class Template:
    def __init__(self, slug, tools):
        self.slug = slug
        self.tools = set(tools)

    def offers_tool(self, tool):
        return tool.slug in self.tools


@pytest.fixture
def tool(teams):
    return ToolFactory(
        slug="claude-code", name="Claude Code", status="approved", max_data_classification="confidential"
    )


def grant(people, teams, tool, team="payments", **kw):
    return access.grant_create(actor=people["bob"], team=teams[team], tool=tool, **kw)


def test_granted_team_member_is_allowed_with_a_reason(people, teams, tool):
    g = grant(people, teams, tool)
    decision = decide(people["alice"], tool)
    assert decision.allowed
    assert decision.codes == ["granted"]
    assert decision.grant_ids == [g.pk]
    # the grant is a guardian object permission on the tool for the team's group
    assert people["alice"].has_perm("catalog.use_aitool", tool)
    assert AIToolGroupObjectPermission.objects.filter(group=teams["payments"].group, content_object=tool).exists()


def test_no_grant(people, teams, tool):
    grant(people, teams, tool, team="search")
    decision = decide(people["alice"], tool)
    assert not decision.allowed and decision.codes == ["no_grant"]
    assert "request access" in decision.reasons[0].message


def test_not_approved_tool_denied_even_with_a_grant(people, teams, tool):
    grant(people, teams, tool)
    tool.status = "deprecated"
    tool.save()
    assert decide(people["alice"], tool).codes == ["tool_not_approved"]


def test_banned_tool_denied_to_everyone_including_admins(people, teams, tool):
    grant(people, teams, tool)
    grant(people, teams, tool, team="platform")
    people["admin"].groups.add(teams["platform"].group)
    tool.status = "banned"
    tool.save()
    for name in ("alice", "admin", "bob"):
        decision = decide(people[name], tool)
        assert not decision.allowed
        assert "tool_banned" in decision.codes


def test_review_expired(people, teams, tool):
    grant(people, teams, tool)
    tool.review_due = timezone.localdate() - dt.timedelta(days=1)
    tool.save()
    assert decide(people["alice"], tool).codes == ["review_expired"]


def test_grant_expired_before_and_after_the_sweep(people, teams, tool):
    g = grant(people, teams, tool, expires_at=timezone.now() + dt.timedelta(hours=1))
    AccessGrant.objects.filter(pk=g.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert decide(people["alice"], tool).codes == ["grant_expired"]
    access.grants_expire()
    g.refresh_from_db()
    assert g.state == "expired" and g.permission_id is None
    assert decide(people["alice"], tool).codes == ["grant_expired"]
    assert not people["alice"].has_perm("catalog.use_aitool", tool)


def test_classification_above_tool_and_grant(people, teams, tool):
    grant(people, teams, tool, max_data_classification="internal")
    assert decide(people["alice"], tool, PolicyContext("internal")).allowed
    assert decide(people["alice"], tool, PolicyContext("confidential")).codes == ["classification_above_grant"]
    assert decide(people["alice"], tool, PolicyContext("restricted")).codes == [
        "classification_above_tool",
        "classification_above_grant",
    ]


def test_template_does_not_offer_tool(people, teams, tool):
    grant(people, teams, tool)
    assert decide(people["alice"], tool, PolicyContext(template=Template("py", ["claude-code"]))).allowed
    decision = decide(people["alice"], tool, PolicyContext(template=Template("go", ["aider"])))
    assert decision.codes == ["template_does_not_offer_tool"]
    assert "go" in decision.reasons[0].message


def test_every_cause_is_named_at_once(people, teams, tool):
    tool.status = "banned"
    tool.save()
    decision = decide(people["alice"], tool, PolicyContext("restricted", Template("go", [])))
    assert decision.codes == ["tool_banned", "classification_above_tool", "no_grant", "template_does_not_offer_tool"]
    assert all(r.message for r in decision.reasons)


def test_guardian_row_removed_behind_the_grant_denies(people, teams, tool):
    grant(people, teams, tool)
    remove_perm("catalog.use_aitool", teams["payments"].group, tool)
    assert decide(people["alice"], tool).codes == ["grant_expired"]


def test_revoked_grant_denies(people, teams, tool):
    g = grant(people, teams, tool)
    access.grant_revoke(grant=g, actor=people["frank"], reason="budget")
    assert decide(people["alice"], tool).codes == ["no_grant"]


def test_anonymous_and_inactive(people, teams, tool):
    from django.contrib.auth.models import AnonymousUser

    grant(people, teams, tool)
    assert decide(AnonymousUser(), tool).codes == ["not_authenticated"]
    people["alice"].is_active = False
    assert decide(people["alice"], tool).codes == ["user_inactive"]


def test_decide_is_one_query_and_decide_many_too(people, teams, tool):
    others = [ToolFactory(status="approved") for _ in range(5)]
    grant(people, teams, tool)
    grant(people, teams, others[0])
    with CaptureQueriesContext(connection) as q:
        decide(people["alice"], tool)
    assert len(q) == 1
    with CaptureQueriesContext(connection) as q:
        decisions = decide_many(people["alice"], [tool, *others])
    assert len(q) == 1
    assert [decisions[t.pk].allowed for t in [tool, *others]] == [True, True, False, False, False, False]
