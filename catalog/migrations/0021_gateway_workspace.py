import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Model calls of workspaces (issue 15): a call belongs to a run or a workspace; per-start workspace keys."""

    dependencies = [("catalog", "0020_agent_group_workspace")]

    operations = [
        migrations.AlterField(
            model_name="modelcall",
            name="run",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="calls",
                to="catalog.agentrun",
            ),
        ),
        migrations.AddField(
            model_name="modelcall",
            name="workspace",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="model_calls",
                to="catalog.workspace",
            ),
        ),
        migrations.AddIndex(
            model_name="modelcall",
            index=models.Index(fields=["workspace", "created_at"], name="model_call_workspace_at"),
        ),
        migrations.AddConstraint(
            model_name="modelcall",
            constraint=models.CheckConstraint(
                condition=models.Q(("run__isnull", False), ("workspace__isnull", True))
                | models.Q(("run__isnull", True), ("workspace__isnull", False)),
                name="model_call_run_xor_workspace",
            ),
        ),
        migrations.CreateModel(
            name="WorkspaceGatewayKey",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("token_sha256", models.CharField(max_length=64, unique=True)),
                (
                    "tool_versions",
                    models.JSONField(blank=True, default=list, help_text="ids of the tool versions allowed at start"),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
                (
                    "build",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="catalog.workspacebuild",
                    ),
                ),
                (
                    "workspace",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="gateway_keys",
                        to="catalog.workspace",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
                "indexes": [models.Index(fields=["workspace", "revoked_at"], name="ws_gateway_key_live")],
            },
        ),
    ]
