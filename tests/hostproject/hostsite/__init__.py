"""Acme's developer portal (a test host): Goldpath is one of its apps."""

from .celery import app as celery_app

__all__ = ["celery_app"]
