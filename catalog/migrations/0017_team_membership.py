"""One record of team membership: the team's group (what django-guardian grants tools to and what the policy reads).

`Team.members` duplicated it, and only the team services kept the two in step; the Django admin and API-made
managers did not (someone listed as a member whom the policy denied, or a manager who was no member). Everyone
listed in `Team.members` or `Team.managers` joins the team's group (a manager is also a member), each team's
change is recorded as a `team.membership_merged` audit event, and the column goes."""

from django.conf import settings
from django.db import migrations


def merge_into_groups(apps, schema_editor):
    Team = apps.get_model("catalog", "Team")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    AuditEvent = apps.get_model("catalog", "AuditEvent")
    in_group = User.groups.through.objects
    for team in Team.objects.order_by("pk"):
        listed = set(team.members.values_list("pk", flat=True)) | set(team.managers.values_list("pk", flat=True))
        grouped = set(in_group.filter(group_id=team.group_id).values_list("user_id", flat=True))
        missing = sorted(listed - grouped)
        in_group.bulk_create([User.groups.through(user_id=pk, group_id=team.group_id) for pk in missing])
        only_group = sorted(grouped - set(team.members.values_list("pk", flat=True)))
        if not (missing or only_group):
            continue
        names = dict(User.objects.filter(pk__in=[*missing, *only_group]).values_list("pk", "username"))
        AuditEvent.objects.create(
            actor=None,
            actor_repr="system",
            verb="team.membership_merged",
            target_type="team",
            target_id=str(team.pk),
            target_repr=team.slug,
            payload={
                # listed on the team (as a member or a manager) but not in its group: they join it
                "joined_group": [names.get(pk, str(pk)) for pk in missing],
                # in the group (so allowed by the policy) but not listed as members: now listed
                "listed_from_group": [names.get(pk, str(pk)) for pk in only_group],
            },
            request_id="migration:0017_team_membership",
        )


def split_from_groups(apps, schema_editor):
    Team = apps.get_model("catalog", "Team")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    for team in Team.objects.order_by("pk"):
        team.members.set(User.objects.filter(groups=team.group_id))


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0016_audit_verbs"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(merge_into_groups, migrations.RunPython.noop),
        migrations.RemoveField(model_name="team", name="members"),
        # reversed: the column comes back (RemoveField's reverse), then it is filled from the groups
        migrations.RunPython(migrations.RunPython.noop, split_from_groups),
    ]
