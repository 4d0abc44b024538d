"""One set of job field names (issue 17): builds and agent runs record task, worker, process group and log
sequence in the same columns, defined once on the abstract job (catalog.jobs.models.Job)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("catalog", "0022_usage_period_cut")]

    operations = [
        migrations.RenameField("workspacebuild", "celery_task_id", "task_id"),
        migrations.RenameField("workspacebuild", "worker_host", "worker"),
        migrations.RenameField("workspacebuild", "log_count", "log_seq"),
        migrations.RenameField("agentrun", "sandbox_pid", "pgid"),
        migrations.AlterField(
            model_name="workspacebuild",
            name="task_id",
            field=models.CharField(blank=True, help_text="the Celery task that claimed the job", max_length=64),
        ),
        migrations.AlterField(
            model_name="workspacebuild",
            name="worker",
            field=models.CharField(blank=True, help_text="the worker (host) that runs it", max_length=255),
        ),
        migrations.AlterField(
            model_name="workspacebuild",
            name="pgid",
            field=models.IntegerField(
                blank=True, help_text="the process group to kill when the worker is lost", null=True
            ),
        ),
        migrations.AlterField(
            model_name="workspacebuild",
            name="log_seq",
            field=models.PositiveIntegerField(default=0, help_text="the last log line's sequence number"),
        ),
        migrations.AlterField(
            model_name="agentrun",
            name="task_id",
            field=models.CharField(blank=True, help_text="the Celery task that claimed the job", max_length=64),
        ),
        migrations.AlterField(
            model_name="agentrun",
            name="worker",
            field=models.CharField(blank=True, help_text="the worker (host) that runs it", max_length=255),
        ),
        migrations.AlterField(
            model_name="agentrun",
            name="pgid",
            field=models.IntegerField(
                blank=True, help_text="the process group to kill when the worker is lost", null=True
            ),
        ),
        migrations.AlterField(
            model_name="agentrun",
            name="log_seq",
            field=models.PositiveIntegerField(default=0, help_text="the last log line's sequence number"),
        ),
    ]
