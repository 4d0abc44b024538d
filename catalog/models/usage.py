"""Usage events (append-only facts for reports) and the rollups the adoption report reads.

Events name their team, tool and template by slug (so vendor usage imported for tools or teams the
portal does not know still counts) and link the portal rows when they exist. Rollups are rebuilt per
affected day by `catalog.reports.rollup` from a watermark; reports never read raw events.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class UsageKind(models.TextChoices):
    WORKSPACE_CREATED = "workspace_created", "Workspace created"
    WORKSPACE_STARTED = "workspace_started", "Workspace started"
    WORKSPACE_STOPPED = "workspace_stopped", "Workspace stopped"
    WORKSPACE_DELETED = "workspace_deleted", "Workspace deleted"
    BUILD_SUCCEEDED = "build_succeeded", "Build succeeded"
    BUILD_FAILED = "build_failed", "Build failed"
    TOOL_ENABLED = "tool_enabled", "Tool enabled in a workspace"
    AGENT_RUN_STARTED = "agent_run_started", "Agent run started"
    AGENT_RUN_FINISHED = "agent_run_finished", "Agent run finished"
    AGENT_RESULT_ACCEPTED = "agent_result_accepted", "Agent result accepted"
    POLICY_DENIED = "policy_denied", "Policy denied"
    ACCESS_REQUESTED = "access_requested", "Access requested"
    ACCESS_GRANTED = "access_granted", "Access granted"
    TOOL_APPROVED = "tool_approved", "Tool approved"
    TOOL_BANNED = "tool_banned", "Tool banned"
    TOOL_USED = "tool_used", "Tool used (vendor usage)"
    MODEL_CALL = "model_call", "Model call through the gateway"


# kinds that make their user an "active user" of the tool that day
ACTIVE_KINDS = frozenset(
    {
        UsageKind.WORKSPACE_CREATED,
        UsageKind.WORKSPACE_STARTED,
        UsageKind.WORKSPACE_STOPPED,
        UsageKind.WORKSPACE_DELETED,
        UsageKind.BUILD_SUCCEEDED,
        UsageKind.BUILD_FAILED,
        UsageKind.TOOL_ENABLED,
        UsageKind.AGENT_RUN_STARTED,
        UsageKind.AGENT_RUN_FINISHED,
        UsageKind.AGENT_RESULT_ACCEPTED,
        UsageKind.TOOL_USED,
    }
)


class UsageEventQuerySet(models.QuerySet):
    def update(self, **kwargs):  # type: ignore[override]
        raise PermissionError("usage events are append-only")

    def delete(self):  # type: ignore[override]
        raise PermissionError("usage events are append-only")


class UsageEvent(models.Model):
    """One fact: something happened with an AI tool, a workspace or an access decision."""

    at = models.DateTimeField(help_text="when it happened")
    day = models.DateField(db_index=True, help_text="UTC date of `at` (the rollup grain)")
    ingested_at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=32, choices=UsageKind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    user_ref = models.CharField(max_length=150, blank=True, help_text="username, or the vendor's user id for imports")
    team = models.ForeignKey("catalog.Team", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    team_slug = models.CharField(max_length=50, blank=True)
    tool = models.ForeignKey("catalog.AITool", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    tool_slug = models.CharField(max_length=50, blank=True)
    template_slug = models.CharField(max_length=50, blank=True)
    outcome = models.CharField(
        max_length=32, blank=True, help_text="agent run outcome, build transition, or policy denial reason"
    )
    duration_s = models.FloatField(null=True, blank=True)
    cost = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    reported_users = models.PositiveIntegerField(
        null=True, blank=True, help_text="vendor-reported active users for the day (imports without user ids)"
    )
    engaged_users = models.PositiveIntegerField(null=True, blank=True)
    suggestions = models.PositiveIntegerField(null=True, blank=True)
    acceptances = models.PositiveIntegerField(null=True, blank=True)
    input_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    output_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    model_cost = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True, help_text="model spend metered by the gateway"
    )
    source = models.CharField(max_length=64, default="portal", db_index=True)
    key = models.CharField(max_length=200, unique=True, help_text="idempotency key: the same fact is stored once")

    objects = UsageEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind} {self.team_slug}/{self.tool_slug} {self.user_ref}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise PermissionError("usage events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):  # type: ignore[override]
        raise PermissionError("usage events are append-only")


class UsageDaily(models.Model):
    """Counts and sums per day x team x tool x template (one wide row; rebuilt per affected day)."""

    day = models.DateField()
    team_slug = models.CharField(max_length=50, blank=True)
    tool_slug = models.CharField(max_length=50, blank=True)
    template_slug = models.CharField(max_length=50, blank=True)
    events = models.PositiveIntegerField(default=0)
    active_events = models.PositiveIntegerField(default=0, help_text="events of kinds that count as use")
    demo_events = models.PositiveIntegerField(default=0)
    workspaces_created = models.PositiveIntegerField(default=0)
    workspaces_started = models.PositiveIntegerField(default=0)
    workspaces_stopped = models.PositiveIntegerField(default=0)
    workspaces_deleted = models.PositiveIntegerField(default=0)
    builds_succeeded = models.PositiveIntegerField(default=0)
    builds_failed = models.PositiveIntegerField(default=0)
    build_seconds = models.FloatField(default=0)
    tools_enabled = models.PositiveIntegerField(default=0)
    agent_runs = models.PositiveIntegerField(default=0)
    agent_runs_finished = models.PositiveIntegerField(default=0)
    agent_runs_succeeded = models.PositiveIntegerField(default=0)
    agent_seconds = models.FloatField(default=0)
    agent_results_accepted = models.PositiveIntegerField(default=0)
    policy_denials = models.PositiveIntegerField(default=0)
    access_requested = models.PositiveIntegerField(default=0)
    access_granted = models.PositiveIntegerField(default=0)
    tools_approved = models.PositiveIntegerField(default=0)
    tools_banned = models.PositiveIntegerField(default=0)
    tool_uses = models.PositiveIntegerField(default=0)
    reported_users = models.PositiveIntegerField(default=0, help_text="max vendor-reported daily active users")
    suggestions = models.PositiveBigIntegerField(default=0)
    acceptances = models.PositiveBigIntegerField(default=0)
    usage_cost = models.DecimalField(max_digits=14, decimal_places=4, default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    model_cost = models.DecimalField(max_digits=14, decimal_places=6, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "team_slug", "tool_slug", "template_slug"], name="uniq_usage_daily")
        ]
        indexes = [models.Index(fields=["team_slug", "day"], name="usage_daily_team_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.team_slug}/{self.tool_slug}/{self.template_slug}: {self.events} events"


class PeriodSums(models.Model):
    """The columns a week or month sums from the daily rows (`catalog.reports.rollup.PERIOD_COLUMNS`)."""

    events = models.PositiveIntegerField(default=0)
    active_events = models.PositiveIntegerField(default=0)
    demo_events = models.PositiveIntegerField(default=0)
    workspaces_created = models.PositiveIntegerField(default=0)
    builds_succeeded = models.PositiveIntegerField(default=0)
    builds_failed = models.PositiveIntegerField(default=0)
    agent_runs = models.PositiveIntegerField(default=0)
    agent_runs_finished = models.PositiveIntegerField(default=0)
    agent_results_accepted = models.PositiveIntegerField(default=0)
    policy_denials = models.PositiveIntegerField(default=0)
    access_requested = models.PositiveIntegerField(default=0)
    access_granted = models.PositiveIntegerField(default=0)
    suggestions = models.PositiveBigIntegerField(default=0)
    acceptances = models.PositiveBigIntegerField(default=0)
    usage_cost = models.DecimalField(max_digits=14, decimal_places=4, default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    model_cost = models.DecimalField(max_digits=14, decimal_places=6, default=0)

    class Meta:
        abstract = True


class UsagePeriod(PeriodSums):
    """UsageDaily summed per whole week or month x team x tool (templates folded), so a report over whole
    periods reads a few rows per team and tool instead of every day. Rebuilt for the periods of affected days."""

    kind = models.CharField(max_length=5, choices=[("week", "week"), ("month", "month")])
    start = models.DateField()
    team_slug = models.CharField(max_length=50, blank=True)
    tool_slug = models.CharField(max_length=50, blank=True)
    reported_users = models.PositiveIntegerField(default=0, help_text="peak vendor-reported daily active users")
    active_users = models.PositiveIntegerField(null=True, blank=True, help_text="distinct active users in the period")
    median_ready_s = models.FloatField(null=True, blank=True, help_text="median time to ready of start builds")
    row_json = models.TextField(
        null=True, blank=True, help_text="the report row's static members as JSON text (see reports/rowsql.py)"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "start", "team_slug", "tool_slug"], name="uniq_usage_period")
        ]
        indexes = [
            models.Index(fields=["kind", "team_slug", "tool_slug", "start"], name="usage_period_pair"),
            # the few rows with vendor-reported user counts (their peaks count in totals)
            models.Index(
                fields=["kind", "start"], name="usage_period_reported", condition=models.Q(reported_users__gt=0)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.start} {self.team_slug}/{self.tool_slug}: {self.events} events"


class UsagePeriodTotal(PeriodSums):
    """A whole period's sums per team (tool `*`), per tool (team `*`) and overall (`*`, `*`), with the seat
    cost of today's grants; the overall row also keeps the period's report rows as JSON text.

    The report over every team and tool reads these instead of one row per team and tool, as long as the
    inputs they were written with still hold: the period's last day (`last_day`) and the team sizes and paid
    grants (`inputs_key`, a fingerprint). The rollup writes them with each period and rewrites stale ones."""

    kind = models.CharField(max_length=5)
    start = models.DateField()
    team_slug = models.CharField(max_length=50)
    tool_slug = models.CharField(max_length=50)
    reported_users = models.PositiveIntegerField(default=0, help_text="sum of the rows' vendor-reported users")
    seat_cost = models.DecimalField(max_digits=24, decimal_places=10, default=0)
    active_users = models.PositiveIntegerField(null=True, blank=True, help_text="distinct active users (folds)")
    last_day = models.DateField(
        null=True, blank=True, help_text="the period's last day as of writing (today, if in it)"
    )
    inputs_key = models.CharField(max_length=32, blank=True, help_text="fingerprint of team sizes and paid grants")
    rows_json = models.TextField(null=True, blank=True, help_text="the period's report rows, on the overall row")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "start", "team_slug", "tool_slug"], name="uniq_usage_period_total")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.start} {self.team_slug}/{self.tool_slug} totals"


class UsagePeriodCut(PeriodSums):
    """A cut period's report, stored on first use: the days of one week or month that a range covers when it
    does not cover them all (a range from a Thursday), per team x tool and folded as in UsagePeriodTotal.

    Dashboards ask for the same rolling range all day ("the last 28 days"); its cut period is computed live
    once, stored by a worker (`catalog.tasks.reports.store_cut_report`) and then read like a whole period's
    stored report while its fingerprint holds. The rollup deletes the cuts whose days it rebuilds, whose
    fingerprint no longer holds, or that were written over a week ago."""

    kind = models.CharField(max_length=5)
    start = models.DateField(help_text="the period's first day (its key)")
    first_day = models.DateField(help_text="the cut's first day")
    last_day = models.DateField(help_text="the cut's last day")
    team_slug = models.CharField(max_length=50)
    tool_slug = models.CharField(max_length=50)
    reported_users = models.PositiveIntegerField(default=0, help_text="vendor-reported users (peak; sum on folds)")
    seat_cost = models.DecimalField(max_digits=24, decimal_places=10, default=0)
    active_users = models.PositiveIntegerField(null=True, blank=True, help_text="distinct active users (folds)")
    inputs_key = models.CharField(max_length=32, blank=True, help_text="fingerprint, on the overall row")
    rows_json = models.TextField(null=True, blank=True, help_text="the cut's report rows, on the overall row")
    written_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "start", "first_day", "last_day", "team_slug", "tool_slug"],
                name="uniq_usage_period_cut",
            )
        ]
        indexes = [models.Index(fields=["first_day", "last_day"], name="usage_period_cut_days")]

    def __str__(self) -> str:
        return f"{self.kind} {self.first_day}..{self.last_day} {self.team_slug}/{self.tool_slug} (cut)"


class UsagePeriodUsers(models.Model):
    """Distinct active users per whole week or month x team x tool; `*` folds a team's tools or a tool's
    teams. Rebuilt with the period sums from the per user per day rows."""

    kind = models.CharField(max_length=5)
    start = models.DateField()
    team_slug = models.CharField(max_length=50)
    tool_slug = models.CharField(max_length=50)
    users = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "start", "team_slug", "tool_slug"], name="uniq_usage_period_users")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.start} {self.team_slug}/{self.tool_slug}: {self.users} users"


class UsagePeriodBucket(models.Model):
    """The time-to-ready histogram per whole week or month x team x tool."""

    kind = models.CharField(max_length=5)
    start = models.DateField()
    team_slug = models.CharField(max_length=50, blank=True)
    tool_slug = models.CharField(max_length=50, blank=True)
    bucket = models.PositiveSmallIntegerField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "start", "team_slug", "tool_slug", "bucket"], name="uniq_usage_period_bucket"
            )
        ]
        indexes = [models.Index(fields=["kind", "team_slug", "start"], name="usage_period_bucket_team")]

    def __str__(self) -> str:
        return f"{self.kind} {self.start} {self.team_slug}/{self.tool_slug} bucket {self.bucket}: {self.count}"


class UsageUserDay(models.Model):
    """Who was active, per day x team x tool: distinct active users for any period come from here."""

    day = models.DateField()
    team_slug = models.CharField(max_length=50, blank=True)
    tool_slug = models.CharField(max_length=50, blank=True)
    user_ref = models.CharField(max_length=150)
    events = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "team_slug", "tool_slug", "user_ref"], name="uniq_usage_user_day")
        ]
        indexes = [models.Index(fields=["team_slug", "day"], name="usage_userday_team_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.team_slug}/{self.tool_slug}: {self.user_ref}"


class UsageReadyBucket(models.Model):
    """Histogram of time-to-ready (succeeded start builds) per day x team x tool, for medians over any period."""

    day = models.DateField()
    team_slug = models.CharField(max_length=50, blank=True)
    tool_slug = models.CharField(max_length=50, blank=True)
    bucket = models.PositiveSmallIntegerField(help_text="see catalog.reports.rollup.ready_bucket")
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "team_slug", "tool_slug", "bucket"], name="uniq_usage_ready_bucket")
        ]
        indexes = [models.Index(fields=["team_slug", "day"], name="usage_ready_team_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.team_slug}/{self.tool_slug} bucket {self.bucket}: {self.count}"


class UsageFirstUse(models.Model):
    """The first day a team used a tool (for the request -> grant -> first use funnel)."""

    team_slug = models.CharField(max_length=50)
    tool_slug = models.CharField(max_length=50)
    first_day = models.DateField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team_slug", "tool_slug"], name="uniq_usage_first_use")]

    def __str__(self) -> str:
        return f"{self.team_slug}/{self.tool_slug} first used {self.first_day}"


class RollupState(models.Model):
    """The rollup watermark: the highest event id and the ingest time already folded into rollups."""

    name = models.CharField(max_length=32, unique=True)
    last_event_id = models.BigIntegerField(default=0)
    last_ingested_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_days = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: event {self.last_event_id}"
