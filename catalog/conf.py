"""App-level settings object (like DRF's api_settings): one place for Goldpath's own settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "REVIEW_PERIOD_DAYS": 180,
    "REVIEW_WARNING_DAYS": 14,
    "WEBHOOK_URL": "",
    "PORTAL_URL": "http://localhost:8000",
    "DEMO_PASSWORD": "goldpath",
    "WEBHOOK_TIMEOUT_S": 5,
    # workspaces and builds
    "BUILD_HEARTBEAT_TIMEOUT_S": 60,
    "BUILD_HEARTBEAT_INTERVAL_S": 2,
    "DEFAULT_MAX_WORKSPACES": 10,
    "DEFAULT_MAX_CONCURRENT_BUILDS": 5,
    "TEMPLATE_UPLOAD_MAX_BYTES": 5 * 1024 * 1024,
    "TERRAFORM_LOCK_TIMEOUT_S": 30,
    "WORKSPACE_DEFAULT_TTL_HOURS": 0,
}


class GoldpathSettings:
    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown Goldpath setting {name!r}")
        return getattr(settings, "GOLDPATH", {}).get(name, DEFAULTS[name])


goldpath_settings = GoldpathSettings()
