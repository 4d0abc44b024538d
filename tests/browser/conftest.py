"""Playwright driving Debian's chromium against pytest-django's live server."""

from __future__ import annotations

import pytest
from django.db import connections

from tests.browser.support import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture
def browser(monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (pip) is not installed")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
            # ORM calls made while Playwright's loop runs use their own connection (asgiref's context-local
            # handler); close it, or PostgreSQL refuses to drop the test database at the end of the session.
            connections.close_all()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    pg = context.new_page()
    yield pg
    context.close()
