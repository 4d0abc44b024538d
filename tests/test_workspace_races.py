"""20 concurrent start/stop requests on one workspace, with a real worker taking the builds:
every answer is 2xx, 409 or 429 (never 500) and no two builds of the workspace ever overlap."""

from __future__ import annotations

import random
import threading

import pytest
from django.db import connections
from rest_framework.test import APIClient

from catalog.models import Workspace, WorkspaceBuild
from catalog.services import workspaces as ws_services
from tests.conftest import wait_for
from tests.workspace_helpers import published_template, sample_repository

pytestmark = pytest.mark.integration

TRIVIAL = {
    "main.tf": 'variable "repository" {\n  type = string\n}\nresource "terraform_data" "w" {\n'
    "  input = var.repository\n}\n"
}
PARAMS = [
    {"name": "repository", "type": "string", "default": None, "description": "", "sensitive": False, "required": True}
]


def test_twenty_concurrent_start_stop_requests(celery_worker, people, teams):
    from rest_framework.authtoken.models import Token

    template = published_template("trivial", parameters=PARAMS, files=TRIVIAL)
    sample_repository(people)
    ws = ws_services.workspace_create(
        actor=people["alice"], name="race", template=template, parameters={"repository": "sample"}
    )
    wait_for(lambda: not Workspace.objects.get(pk=ws.pk).builds.filter(status__in=["pending", "running"]).exists(), 60)
    token = Token.objects.create(user=people["alice"]).key
    answers: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def hit(i: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        action = random.choice(["start", "stop"]) if i % 3 else "stop"
        barrier.wait()
        try:
            code = client.post(f"/api/v1/workspaces/{ws.pk}/{action}/").status_code
        except Exception:  # noqa: BLE001 - a crash counts as a 500
            code = 500
        finally:
            connections.close_all()
        with lock:
            answers.append(code)

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 20
    assert set(answers) <= {202, 409, 429}, answers
    assert 202 in answers
    wait_for(lambda: not WorkspaceBuild.objects.filter(workspace=ws, status__in=["pending", "running"]).exists(), 60)
    builds = list(WorkspaceBuild.objects.filter(workspace=ws, started_at__isnull=False).order_by("started_at"))
    for a, b in zip(builds, builds[1:], strict=False):
        assert a.finished_at <= b.started_at, f"builds {a.pk} and {b.pk} overlapped"
    assert WorkspaceBuild.objects.filter(workspace=ws).count() == 1 + answers.count(202)
