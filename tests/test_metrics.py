"""`GET /metrics` (Prometheus): only for the scraper holding the token, with values counted from the database
(right however many web and worker processes run), the broker's queue lengths, and requests by view name."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from catalog import audit
from catalog.models import AgentGroup, AgentRun, ModelCall, ToolVersion, Workspace, WorkspaceBuild
from catalog.services import access
from tests.conftest import purge_queues
from tests.factories import ToolFactory
from tests.workspace_helpers import published_template

pytestmark = pytest.mark.django_db
TOKEN = "s3cret-scrape-token"


@pytest.fixture
def token(settings):
    settings.GOLDPATH = {**settings.GOLDPATH, "METRICS_TOKEN": TOKEN}
    return TOKEN


def scrape(token: str = TOKEN) -> dict[tuple[str, frozenset], float]:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.content.decode())
        for s in family.samples
    }


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_no_configured_token_means_no_endpoint(settings):
    settings.GOLDPATH = {**settings.GOLDPATH, "METRICS_TOKEN": ""}
    assert Client().get("/metrics").status_code == 404
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


def test_a_missing_or_wrong_token_is_refused(token):
    assert Client().get("/metrics").status_code == 401
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 401
    assert b"goldpath_" not in wrong.content
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x").status_code == 401


def _workspace(people, teams, template, name: str, status: str) -> Workspace:
    return Workspace.objects.create(
        name=name,
        owner=people["alice"],
        team=teams["payments"],
        template=template,
        template_version=template.active_version,
        classification="internal",
        status=status,
    )


def _build(ws: Workspace, number: int, transition: str, status: str, seconds: float | None) -> WorkspaceBuild:
    started = timezone.now() - dt.timedelta(hours=1)
    return WorkspaceBuild.objects.create(
        workspace=ws,
        number=number,
        transition=transition,
        status=status,
        template_version=ws.template_version,
        started_at=started,
        finished_at=started + dt.timedelta(seconds=seconds) if seconds is not None else None,
    )


def _run(people, teams, tool, status: str) -> AgentRun:
    version = ToolVersion.objects.create(tool=tool, version=f"1.0.{AgentRun.objects.count()}", launch_command=["x"])
    group = AgentGroup.objects.create(
        requester=people["alice"],
        team=teams["payments"],
        prompt="Add a greeting",
        prompt_sha256="0" * 64,
        repository_url="/nowhere",
        agents=[{"tool": tool.slug, "count": 1}],
    )
    return AgentRun.objects.create(group=group, index=1, tool=tool, tool_version=version, status=status)


def _call(run: AgentRun, *, inp=0, out=0, cache_read=0, cache_write=0, cost="0", refused="") -> ModelCall:
    return ModelCall.objects.create(
        run=run,
        team_id=run.group.team_id,
        tool_id=run.tool_id,
        protocol="anthropic-messages",
        model="claude-sonnet-4-5",
        upstream="demo",
        status_code=403 if refused else 200,
        refused=refused,
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cost_usd=Decimal(cost),
    )


def test_families_count_what_is_in_the_database(token, people, teams):
    template = published_template()
    running = [_workspace(people, teams, template, f"run-{i}", "running") for i in range(3)]
    stopped = _workspace(people, teams, template, "stopped", "stopped")
    _workspace(people, teams, template, "broken", "failed")
    _build(running[0], 1, "start", "succeeded", 4)
    _build(running[1], 1, "start", "succeeded", 45)
    _build(stopped, 1, "start", "succeeded", 700)
    _build(stopped, 2, "stop", "failed", 2)
    _build(running[2], 1, "start", "running", None)  # in flight: counted, not in the duration histogram
    reaped = _build(running[2], 2, "stop", "failed", 90)
    audit.record(actor=None, verb="build.reaped", target=reaped, payload={"workspace": str(running[2].pk)})

    claude = ToolFactory(slug="claude-code", status="approved")
    codex = ToolFactory(slug="codex-cli", status="approved")
    run = _run(people, teams, claude, "succeeded")
    _run(people, teams, claude, "failed")
    other = _run(people, teams, codex, "running")
    _call(run, inp=1200, out=300, cache_read=5000, cache_write=100, cost="0.012500")
    _call(run, inp=800, out=200, cost="0.007500")
    _call(run, refused="over the grant's budget")
    _call(other, inp=10, out=5, cost="0.000100")
    assert not access.tool_use_record(people["alice"], codex).allowed  # no grant: a policy denial

    samples = scrape()

    assert value(samples, "goldpath_workspaces", status="running") == 3
    assert value(samples, "goldpath_workspaces", status="stopped") == 1
    assert value(samples, "goldpath_workspaces", status="failed") == 1
    assert value(samples, "goldpath_workspaces", status="deleted") == 0
    assert value(samples, "goldpath_workspace_builds_total", transition="start", status="succeeded") == 3
    assert value(samples, "goldpath_workspace_builds_total", transition="start", status="running") == 1
    assert value(samples, "goldpath_workspace_builds_total", transition="stop", status="failed") == 2
    hist = "goldpath_workspace_build_duration_seconds"
    assert value(samples, f"{hist}_count", transition="start") == 3
    assert value(samples, f"{hist}_bucket", transition="start", le="5.0") == 1
    assert value(samples, f"{hist}_bucket", transition="start", le="60.0") == 2
    assert value(samples, f"{hist}_bucket", transition="start", le="600.0") == 2
    assert value(samples, f"{hist}_bucket", transition="start", le="+Inf") == 3
    assert value(samples, f"{hist}_sum", transition="start") == pytest.approx(749)
    assert value(samples, f"{hist}_count", transition="stop") == 2
    assert value(samples, f"{hist}_sum", transition="stop") == pytest.approx(92)

    assert value(samples, "goldpath_agent_runs_total", tool="claude-code", status="succeeded") == 1
    assert value(samples, "goldpath_agent_runs_total", tool="claude-code", status="failed") == 1
    assert value(samples, "goldpath_agent_runs_total", tool="codex-cli", status="running") == 1
    tokens = "goldpath_model_tokens_total"
    assert value(samples, tokens, tool="claude-code", direction="input") == 2000
    assert value(samples, tokens, tool="claude-code", direction="output") == 500
    assert value(samples, tokens, tool="claude-code", direction="cache_read") == 5000
    assert value(samples, tokens, tool="claude-code", direction="cache_write") == 100
    assert value(samples, tokens, tool="codex-cli", direction="input") == 10
    assert value(samples, "goldpath_model_cost_usd_total", tool="claude-code") == pytest.approx(0.02)
    assert value(samples, "goldpath_model_cost_usd_total", tool="codex-cli") == pytest.approx(0.0001)
    assert value(samples, "goldpath_model_calls_refused_total", tool="claude-code") == 1
    assert value(samples, "goldpath_model_calls_refused_total", tool="codex-cli") == 0
    assert value(samples, "goldpath_policy_denials_total") == 1
    assert value(samples, "goldpath_reaper_actions_total", kind="build") == 1
    assert value(samples, "goldpath_reaper_actions_total", kind="agent_run") == 0


def test_a_run_failed_by_the_reaper_is_counted(token, people, teams):
    from catalog.services import agent_runs as agent_services

    run = _run(people, teams, ToolFactory(slug="claude-code", status="approved"), "running")
    AgentRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - dt.timedelta(hours=1))
    assert agent_services.agent_runs_reap()["failed"] == [run.pk]
    samples = scrape()
    assert value(samples, "goldpath_reaper_actions_total", kind="agent_run") == 1
    assert value(samples, "goldpath_agent_runs_total", tool="claude-code", status="failed") == 1


def test_the_queue_length_counts_messages_waiting_in_the_broker(token):
    from portal.celery import app

    purge_queues()
    try:
        for _ in range(3):  # a task no worker consumes here: the messages wait in the queue
            app.send_task("catalog.tasks.reports.metrics_probe", queue="reports")
        samples = scrape()
        assert value(samples, "goldpath_celery_queue_length", queue="reports") == 3
        assert value(samples, "goldpath_celery_queue_length", queue="agents") == 0
    finally:
        purge_queues()


def test_an_unreadable_broker_gives_no_queue_samples_not_an_error(token, settings):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": "/nonexistent/goldpath-broker"}
    samples = scrape()
    assert not [key for key in samples if key[0] == "goldpath_celery_queue_length"]
    assert value(samples, "goldpath_workspaces", status="running") == 0


def test_requests_are_counted_by_view_name(token, people):
    name = "goldpath_http_requests_total"
    labels = {"view": "goldpath:workspace-list", "method": "GET", "status": "200"}
    before = value(scrape(), name, **labels) or 0
    client = Client()
    client.force_login(people["alice"])
    for _ in range(2):
        assert client.get("/workspaces/").status_code == 200
    assert client.get("/no/such/page/").status_code == 404
    samples = scrape()
    assert value(samples, name, **labels) == before + 2
    assert value(samples, "goldpath_http_request_duration_seconds_count", view="goldpath:workspace-list") >= 2
    assert (value(samples, name, view="<unmatched>", method="GET", status="404") or 0) >= 1
    assert not [key for key in samples if "/workspaces/" in str(key)]  # never the raw path


CHILD = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()
from django.test import Client
for _ in range(2):
    Client().get("/healthz")
"""


def test_multiprocess_mode_sums_the_requests_of_every_web_process(token, tmp_path, monkeypatch):
    """With PROMETHEUS_MULTIPROC_DIR (what `make run` sets), any process's /metrics shows every process's requests."""
    import subprocess
    import sys

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    children = [subprocess.Popen([sys.executable, "-c", CHILD], env=env) for _ in range(2)]
    assert [child.wait(60) for child in children] == [0, 0]
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    samples = scrape()
    served = [v for (name, labels), v in samples.items() if name == "goldpath_http_requests_total"]
    assert sum(served) == 4
    assert {dict(labels)["view"] for (name, labels) in samples if name == "goldpath_http_requests_total"} == {"goldpath:healthz"}
    assert value(samples, "goldpath_http_request_duration_seconds_count", view="goldpath:healthz") == 4
    assert value(samples, "goldpath_workspaces", status="running") == 0  # the database families are there too


def test_an_unreachable_redis_gives_no_queue_samples_quickly(token, settings, monkeypatch):
    import time

    from portal.celery import app

    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    monkeypatch.setenv("CELERY_BROKER_URL", settings.CELERY_BROKER_URL)  # Celery's conf prefers the environment
    unreachable = {
        "broker_url": "redis://127.0.0.1:1/0",
        "broker_read_url": None,
        "broker_transport": None,
        "broker_transport_options": {},
    }
    saved = {key: app.conf[key] for key in unreachable}
    app.conf.update(unreachable)
    try:
        started = time.monotonic()
        samples = scrape()
        assert time.monotonic() - started < 5
    finally:
        app.conf.update(saved)
    assert not [key for key in samples if key[0] == "goldpath_celery_queue_length"]
    assert value(samples, "goldpath_policy_denials_total") == 0


def test_the_grafana_dashboard_charts_every_family():
    import json
    from pathlib import Path

    dashboard = json.loads((Path(__file__).resolve().parent.parent / "deploy/grafana/goldpath.json").read_text())
    queries = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for family in (
        "goldpath_workspaces",
        "goldpath_workspace_builds_total",
        "goldpath_workspace_build_duration_seconds_bucket",
        "goldpath_agent_runs_total",
        "goldpath_model_tokens_total",
        "goldpath_model_cost_usd_total",
        "goldpath_model_calls_refused_total",
        "goldpath_policy_denials_total",
        "goldpath_reaper_actions_total",
        "goldpath_celery_queue_length",
        "goldpath_http_requests_total",
        "goldpath_http_request_duration_seconds_bucket",
    ):
        assert family in queries, family
