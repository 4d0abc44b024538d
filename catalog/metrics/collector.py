"""Families counted from the database at scrape time.

Web and worker processes each change rows; only the database sees all of them, so counting there is right
however many processes run (and survives restarts). One aggregate query per family (the model-call families
share one), run only when Prometheus scrapes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ..models import AgentRun, AuditEvent, ModelCall, UsageEvent, Workspace, WorkspaceBuild
from ..models.workspaces import WorkspaceStatus
from .queues import QUEUES, queue_lengths

BUILD_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
TOKEN_DIRECTIONS = ("input", "output", "cache_read", "cache_write")
# audit verbs the reapers write -> the `kind` label (agent runs the reaper failed end as `agent_run.finished`
# with the reaper's error; `agent_run.reaped` is counted too should it get its own verb)
REAPED_BUILD = Q(verb="build.reaped")
REAPED_RUN = Q(verb="agent_run.reaped") | Q(verb="agent_run.finished", payload__error__icontains="by the reaper")


def _seconds(value: dt.timedelta | float | int | None) -> float:
    if value is None:
        return 0.0
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value) / 1e6


class DatabaseCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield self.workspaces()
        yield from self.builds()
        yield self.agent_runs()
        yield from self.model_calls()
        yield self.policy_denials()
        yield self.reaper_actions()
        yield self.queue_lengths()

    def workspaces(self) -> Metric:
        family = GaugeMetricFamily("goldpath_workspaces", "Workspaces by status, now.", labels=["status"])
        counts = dict(Workspace.objects.order_by().values_list("status").annotate(n=Count("pk")))
        for status in WorkspaceStatus.values:  # every status present, zero included: dashboards need no gaps
            family.add_metric([status], counts.get(status, 0))
        return family

    def builds(self) -> Iterator[Metric]:
        total = CounterMetricFamily(
            "goldpath_workspace_builds", "Workspace builds by transition and status.", labels=["transition", "status"]
        )
        for transition, status, n in (
            WorkspaceBuild.objects.order_by().values_list("transition", "status").annotate(n=Count("pk"))
        ):
            total.add_metric([transition, status], n)
        yield total

        duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        ended = Q(started_at__isnull=False, finished_at__isnull=False)
        buckets = {
            f"le_{i}": Count("pk", filter=ended & Q(duration__lte=dt.timedelta(seconds=b)))
            for i, b in enumerate(BUILD_BUCKETS)
        }
        rows = (
            WorkspaceBuild.objects.order_by()
            .filter(ended)
            .annotate(duration=duration)
            .values("transition")
            .annotate(count=Count("pk"), sum=Sum("duration"), **buckets)
        )
        histogram = HistogramMetricFamily(
            "goldpath_workspace_build_duration_seconds",
            "Time from a build's start to its end (ended builds), by transition.",
            labels=["transition"],
        )
        for row in rows:
            cumulative = [(str(float(b)), row[f"le_{i}"]) for i, b in enumerate(BUILD_BUCKETS)]
            histogram.add_metric(
                [row["transition"]], [*cumulative, ("+Inf", row["count"])], sum_value=_seconds(row["sum"])
            )
        yield histogram

    def agent_runs(self) -> Metric:
        family = CounterMetricFamily("goldpath_agent_runs", "Agent runs by tool and status.", labels=["tool", "status"])
        for tool, status, n in AgentRun.objects.order_by().values_list("tool__slug", "status").annotate(n=Count("pk")):
            family.add_metric([tool, status], n)
        return family

    def model_calls(self) -> Iterator[Metric]:
        tokens = CounterMetricFamily(
            "goldpath_model_tokens",
            "Tokens through the model gateway, by tool and direction.",
            labels=["tool", "direction"],
        )
        cost = CounterMetricFamily("goldpath_model_cost_usd", "Model cost through the gateway (USD).", labels=["tool"])
        refused = CounterMetricFamily(
            "goldpath_model_calls_refused", "Model calls the gateway refused, by tool.", labels=["tool"]
        )
        rows = (
            ModelCall.objects.order_by()
            .values("tool__slug")
            .annotate(
                input=Sum("input_tokens"),
                output=Sum("output_tokens"),
                cache_read=Sum("cache_read_tokens"),
                cache_write=Sum("cache_write_tokens"),
                cost=Sum("cost_usd"),
                refused=Count("pk", filter=~Q(refused="")),
            )
        )
        for row in rows:
            tool = row["tool__slug"]
            for direction in TOKEN_DIRECTIONS:
                tokens.add_metric([tool, direction], row[direction] or 0)
            cost.add_metric([tool], float(row["cost"] or 0))
            refused.add_metric([tool], row["refused"])
        yield tokens
        yield cost
        yield refused

    def policy_denials(self) -> Metric:
        family = CounterMetricFamily("goldpath_policy_denials", "Uses of a tool the access policy denied.")
        family.add_metric([], UsageEvent.objects.filter(kind="policy_denied").count())
        return family

    def reaper_actions(self) -> Metric:
        family = CounterMetricFamily(
            "goldpath_reaper_actions",
            "Builds and agent runs the reapers failed because their worker stopped heartbeating.",
            labels=["kind"],
        )
        verbs = ("build.reaped", "agent_run.reaped", "agent_run.finished")  # the indexed verb narrows the scan
        counts = (
            AuditEvent.objects.order_by()
            .filter(verb__in=verbs)
            .aggregate(build=Count("pk", filter=REAPED_BUILD), agent_run=Count("pk", filter=REAPED_RUN))
        )
        for kind, n in counts.items():
            family.add_metric([kind], n)
        return family

    def queue_lengths(self) -> Metric:
        family = GaugeMetricFamily(
            "goldpath_celery_queue_length", "Messages waiting in the broker, by Celery queue.", labels=["queue"]
        )
        for queue, n in queue_lengths(QUEUES).items():
            family.add_metric([queue], n)
        return family
