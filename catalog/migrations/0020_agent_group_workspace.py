"""Issue 15, agents that hand over: an agent group may start from a workspace's checkout (its uncommitted changes
kept as a snapshot on the group), and a run's diff may be applied into that workspace (AgentApply)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0019_workspace_agent_terminals"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="agentgroup",
            name="workspace",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="agent_groups",
                to="catalog.workspace",
            ),
        ),
        migrations.AddField(
            model_name="agentgroup",
            name="workspace_snapshot",
            field=models.TextField(blank=True, help_text="the checkout's uncommitted changes (binary diff)"),
        ),
        migrations.AddField(
            model_name="agentgroup",
            name="workspace_snapshot_sha256",
            field=models.CharField(blank=True, help_text="set once the snapshot is taken", max_length=64),
        ),
        migrations.CreateModel(
            name="AgentApply",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Applying"),
                            ("applied", "Applied"),
                            ("conflict", "Conflicts (nothing changed)"),
                            ("failed", "Failed"),
                        ],
                        default="pending",
                        max_length=20,
                    ),
                ),
                ("diff_sha256", models.CharField(max_length=64)),
                ("files", models.JSONField(blank=True, default=list, help_text="paths written into the checkout")),
                ("conflicts", models.JSONField(blank=True, default=list, help_text="paths that did not merge cleanly")),
                ("error", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "group",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="applies", to="catalog.agentgroup"
                    ),
                ),
                (
                    "requested_by",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="+", to=settings.AUTH_USER_MODEL
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="applies", to="catalog.agentrun"
                    ),
                ),
                (
                    "workspace",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="agent_applies",
                        to="catalog.workspace",
                    ),
                ),
            ],
            options={"ordering": ["-created_at", "-id"]},
        ),
    ]
