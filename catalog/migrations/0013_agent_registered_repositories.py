"""Agent groups and provenance records name a registered repository; the address they used is kept apart."""

import django.db.models.deletion
from django.db import migrations, models


def link_registered(apps, schema_editor):
    """Old groups and records whose address is now registered point at that repository."""
    Repository = apps.get_model("catalog", "Repository")
    by_url = {r.url: r.pk for r in Repository.objects.all()}
    for model in ("AgentGroup", "ProvenanceRecord"):
        Model = apps.get_model("catalog", model)
        for url, pk in by_url.items():
            Model.objects.filter(repository_url=url, repository__isnull=True).update(repository_id=pk)


class Migration(migrations.Migration):
    dependencies = [("catalog", "0012_vendor_keys_fernet")]

    operations = [
        migrations.RenameField("agentgroup", "repository", "repository_url"),
        migrations.RenameField("provenancerecord", "repository", "repository_url"),
        migrations.AlterField(
            model_name="agentgroup",
            name="repository_url",
            field=models.CharField(max_length=1000, help_text="the registered repository's address at launch"),
        ),
        migrations.AddField(
            model_name="agentgroup",
            name="repository",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="agent_groups",
                to="catalog.repository",
            ),
        ),
        migrations.AddField(
            model_name="provenancerecord",
            name="repository",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="provenance_records",
                to="catalog.repository",
            ),
        ),
        migrations.RunPython(link_registered, migrations.RunPython.noop),
    ]
