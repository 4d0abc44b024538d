"""The Celery app: workers import Django settings and discover catalog tasks."""

import os

from celery import Celery

os.umask(0o077)  # what workers write under GOLDPATH_HOME (state, checkouts, logs) is the owner's only
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["catalog"], related_name="tasks")
