"""The data migrations of issue 14, run on data written before them: audit verbs rewritten to the past tense
(0016), and team membership merged into the team's group (0017), whose readers then agree."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("catalog", "0014_gateway_runtimes_reviews")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


def latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_old_verbs_and_double_membership_are_migrated():
    old = migrate(BEFORE)
    User = old.get_model(*settings.AUTH_USER_MODEL.split("."))
    Group = old.get_model("auth", "Group")
    Team = old.get_model("catalog", "Team")
    AuditEvent = old.get_model("catalog", "AuditEvent")
    member, manager, grouped, both = (User.objects.create(username=n) for n in ("mia", "max", "gus", "bea"))
    group = Group.objects.create(name="team:data")
    team = Team.objects.create(slug="data", name="Data", group=group)
    team.members.add(member, both)  # mia: listed, but the policy (the group) never knew her
    team.managers.add(manager)  # max: an API-made manager, no member
    group.user_set.add(grouped, both)  # gus: in the group (allowed by the policy), listed nowhere
    for verb in ("tool.approve", "team.member_add", "agent_group.accept", "agent_group.accepted", "build.cancel"):
        AuditEvent.objects.create(actor_repr="bob", verb=verb, target_type="x", target_id="1", target_repr="x")

    migrate(latest())

    from catalog import selectors
    from catalog.models import AuditEvent as LiveEvent
    from catalog.models import Team as LiveTeam

    verbs = sorted(LiveEvent.objects.filter(actor_repr="bob").values_list("verb", flat=True))
    assert verbs == [
        "agent_group.accept_requested",
        "agent_group.accepted",
        "build.cancel_requested",
        "team.member_added",
        "tool.approved",
    ]
    renamed = LiveEvent.objects.get(verb="audit.verbs_renamed")
    assert renamed.payload["renamed"]["tool.approve"] == ["tool.approved", 1]
    data = LiveTeam.objects.get(slug="data")
    assert sorted(data.members.values_list("username", flat=True)) == ["bea", "gus", "max", "mia"]
    rows = {r["user"].username: (r["is_member"], r["is_manager"]) for r in selectors.team_members(data)}
    assert rows == {"bea": (True, False), "gus": (True, False), "max": (True, True), "mia": (True, False)}
    merged = LiveEvent.objects.get(verb="team.membership_merged", target_repr="data")
    assert merged.payload == {"joined_group": ["mia", "max"], "listed_from_group": ["gus"]}  # by user id
