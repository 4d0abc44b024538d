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
    # agent runs (issue 5)
    "AGENT_MAX_RUNS": 100,  # runs in one group
    "AGENT_TEAM_CONCURRENCY": 8,  # runs of one team in flight at once, across workers
    "AGENT_DEFAULT_TIME_LIMIT_S": 600,
    "AGENT_MAX_TIME_LIMIT_S": 3600,
    "AGENT_HEARTBEAT_S": 2,  # a running run's worker touches heartbeat_at this often
    "AGENT_REAPER_BOUND_S": 30,  # a run without heartbeat for this long is failed by the reaper
    "AGENT_TOKEN_TTL_S": 3600,  # agent identity tokens never outlive this (and are revoked at the end)
    "AGENT_MEMORY_MB": 1024,
    "AGENT_MAX_PROCESSES": 256,
    "AGENT_ALLOW_UNSANDBOXED": False,  # operators only: run agents without bubblewrap
    "AGENT_LOG_LINES_MAX": 5000,  # lines stored per run; the rest is counted, not stored
    "AGENT_PYTHON": "",  # interpreter that replaces a launch command's `python3` (default: one under /usr)
    "SANDBOX_ROOT": "",  # run folders (clones, scratch); default /var/tmp/goldpath-sandboxes-<uid> (env GOLDPATH_SANDBOX_ROOT)
    "PROVENANCE_KEY_PATH": "",  # Ed25519 private key (PEM); default GOLDPATH_HOME/keys/provenance-ed25519.pem
    # workspaces and builds
    "BUILD_HEARTBEAT_TIMEOUT_S": 60,
    "BUILD_HEARTBEAT_INTERVAL_S": 2,
    "DEFAULT_MAX_WORKSPACES": 10,
    "DEFAULT_MAX_CONCURRENT_BUILDS": 5,
    "TEMPLATE_UPLOAD_MAX_BYTES": 5 * 1024 * 1024,
    "TERRAFORM_LOCK_TIMEOUT_S": 30,
    "WORKSPACE_DEFAULT_TTL_HOURS": 0,
    # API request bodies (catalog.api.parsers.SafeJSONParser): larger or deeper JSON is a 400
    "API_JSON_MAX_BYTES": 2 * 1024 * 1024,
    "API_JSON_MAX_DEPTH": 64,
    # registered repositories (catalog.repository_urls); env GOLDPATH_<NAME> is read when these are empty
    "LOCAL_REPOSITORY_ROOTS": "",  # os.pathsep-separated folders (besides GOLDPATH_HOME/repositories)
    "ALLOWED_GIT_HOSTS": "",  # comma-separated host or host:port exempt from the private-address checks
    # model gateway (catalog.gateway): the web tier serves it; workers relay their sandboxes' calls to it
    "GATEWAY_URL": "",  # the web tier's base URL as workers reach it (default: PORTAL_URL)
    "UPSTREAM_ANTHROPIC": "https://api.anthropic.com",  # `demo`: the built-in offline demo model
    "UPSTREAM_OPENAI": "https://api.openai.com",
    "GATEWAY_BODY_MAX_BYTES": 8 * 1024 * 1024,  # a larger request body is refused (413, vendor format)
    "GATEWAY_TOKEN_TTL_S": 3600,  # a run's gateway credential never outlives this (and is revoked at the end)
    "MODEL_PRICES": {},  # {model: {"input", "output", "cache_read", "cache_write"}} USD per million tokens
    "GATEWAY_RECORD_IN_BACKGROUND": True,  # streamed calls are recorded off the answer's path (catalog.gateway.recorder)
    # tool runtimes (catalog.runtimes): installed into GOLDPATH_HOME/tools/<slug>/<version>/
    "TOOLS_DIR": "",  # default GOLDPATH_HOME/tools
    "NPM": "npm",
    "METRICS_TOKEN": "",  # bearer token of GET /metrics (Prometheus); empty: the endpoint is a 404
}


class GoldpathSettings:
    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown Goldpath setting {name!r}")
        return getattr(settings, "GOLDPATH", {}).get(name, DEFAULTS[name])


goldpath_settings = GoldpathSettings()
