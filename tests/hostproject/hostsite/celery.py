"""The host's Celery app, with Goldpath's routes and beat schedule (catalog.celery)."""

import os

from celery import Celery

import catalog.celery as goldpath_celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostsite.settings")

app = Celery("hostsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_routes = goldpath_celery.TASK_ROUTES
app.conf.beat_schedule = goldpath_celery.BEAT_SCHEDULE
app.autodiscover_tasks()
