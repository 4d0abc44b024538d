"""PostgreSQL only: per day x tool bitmaps of active users, so distinct users over a report's range are a
bit_or over a few rows per day (see catalog.reports.rollup.merge_day_users). Filled here for the days
rolled up before; new rollups keep them."""

from django.db import migrations

TABLES_SQL = """
CREATE TABLE IF NOT EXISTS catalog_usageuserindex (
    user_ref varchar(150) PRIMARY KEY,
    idx integer NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS catalog_usagedayusers (
    day date NOT NULL,
    tool_slug varchar(50) NOT NULL,
    users bit varying NOT NULL,
    PRIMARY KEY (day, tool_slug)
);
"""


def create_day_users(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    from catalog.reports.rollup import DAY_CHUNK, merge_day_users

    schema_editor.execute(TABLES_SQL)
    UsageUserDay = apps.get_model("catalog", "UsageUserDay")
    days = sorted(UsageUserDay.objects.order_by().values_list("day", flat=True).distinct())
    for i in range(0, len(days), DAY_CHUNK):
        merge_day_users(days[i : i + DAY_CHUNK])


def drop_day_users(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP TABLE IF EXISTS catalog_usagedayusers; DROP TABLE IF EXISTS catalog_usageuserindex")


class Migration(migrations.Migration):
    dependencies = [("catalog", "0009_usage_period_totals")]

    operations = [migrations.RunPython(create_day_users, drop_day_users)]
