"""Goldpath Django project: settings, urls, Celery app, health."""

from .celery import app as celery_app

__all__ = ("celery_app",)
