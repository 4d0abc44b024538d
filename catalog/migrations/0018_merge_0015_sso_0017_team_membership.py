"""Merges the single sign-on tables (0015) with the audit verbs and team membership changes (0016, 0017), which
were written at the same time; neither touches the other's tables."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0015_sso"),
        ("catalog", "0017_team_membership"),
    ]

    operations: list = []
