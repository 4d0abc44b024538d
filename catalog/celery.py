"""What a host's Celery app needs from Goldpath: task routes and the beat schedule.

Tasks also declare their own queue (`default`, `provisioning`, `agents`, `reports`), so routing holds even
where a host sets no routes; a host's workers consume those queues. Nothing runs unless the host's worker
(and beat, for the schedule) runs: `celery -A <host> worker -Q default,provisioning,agents,reports -B`.
"""

from __future__ import annotations

import os
from datetime import timedelta

QUEUES = ("default", "provisioning", "agents", "reports")

TASK_ROUTES = {
    "catalog.tasks.provisioning.*": {"queue": "provisioning"},
    "catalog.tasks.agents.reap": {"queue": "default"},
    "catalog.tasks.agents.*": {"queue": "agents"},
    "catalog.tasks.reports.*": {"queue": "reports"},
    "catalog.tasks.*": {"queue": "default"},
}

BEAT_SCHEDULE = {
    "tools-review-due": {"task": "catalog.tasks.catalog.tools_review_due", "schedule": timedelta(hours=1)},
    "notifications-retry": {"task": "catalog.tasks.notify.retry_pending", "schedule": timedelta(minutes=5)},
    "agent-runs-reap": {
        "task": "catalog.tasks.agents.reap",
        "schedule": timedelta(seconds=10),
        "options": {"expires": 30, "queue": "default"},
    },
    "grants-expire": {"task": "catalog.tasks.policy.grants_expire", "schedule": timedelta(minutes=15)},
    "builds-reap": {
        "task": "catalog.tasks.provisioning.reap_stale_builds",
        "schedule": timedelta(seconds=int(os.environ.get("GOLDPATH_REAPER_SECONDS", "15"))),
        "options": {"expires": 30},
    },
    "workspaces-autostop": {
        "task": "catalog.tasks.provisioning.autostop_workspaces",
        "schedule": timedelta(minutes=5),
        "options": {"expires": 240},
    },
    # real activity shows up in the adoption report within a minute
    "usage-rollup": {
        "task": "catalog.tasks.reports.rollup_usage",
        "schedule": timedelta(seconds=int(os.environ.get("GOLDPATH_ROLLUP_SECONDS", "30"))),
        "options": {"expires": 60},
    },
}
