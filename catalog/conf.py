"""Goldpath's settings and its contract with a host project.

A host adds `*INSTALLED_APPS` and `*MIDDLEWARE` from here to its own lists, sets `GOLDPATH = {"HOME": ...}` and
includes `catalog.urls` under any prefix; every other `GOLDPATH` key has its default below (read through
`goldpath_settings`, like DRF's api_settings). catalog.checks names anything a host missed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.urls import NoReverseMatch, reverse

# what Goldpath needs installed besides Django's auth, contenttypes, sessions, messages and staticfiles
INSTALLED_APPS = [
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "axes",
    "catalog",
]

# appended after the host's own (session, auth and message middleware come first)
MIDDLEWARE = [
    "catalog.metrics.middleware.HttpMetricsMiddleware",  # times and counts Goldpath's requests, by view name
    "catalog.middleware.RequestIdMiddleware",
    # last: turns a sign-in refused by a lockout into the lockout page (catalog.auth_hardening)
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # first: refuses a locked-out user or client address before any password is checked
    "catalog.auth_hardening.SigninLockoutBackend",
    # OIDC sign-in (catalog.sso); it also refuses passwords when GOLDPATH["LOCAL_PASSWORDS"] is off
    "catalog.sso.backend.GoldpathOIDCBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]

# the API schema's settings (catalog.api.schema applies them to its own views; the host's default when it has none,
# so drf-spectacular's deploy check sees Goldpath's API as the schema view does)
SPECTACULAR_SETTINGS: dict[str, Any] = {
    "TITLE": "Goldpath API",
    "DESCRIPTION": "Approved AI tools, access policies, golden-path workspaces, agent runs and audit.",
    "VERSION": "1.0.0",
    "PREPROCESSING_HOOKS": ["catalog.api.schema.only_goldpath"],
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "DataClassificationEnum": "catalog.models.tools.DataClassification",
        "ToolKindEnum": "catalog.models.tools.ToolKind",
        "UsageKindEnum": "catalog.models.usage.UsageKind",
        "AgentRunStatusEnum": "catalog.models.agents.AgentRunStatus",
        "AgentGroupStatusEnum": "catalog.models.agents.AgentGroupStatus",
    },
}


# Django-level settings of the apps Goldpath installs, applied when the host did not set them itself
# (catalog.apps, before those apps read them): sign-in lockout per user and per client address
# (django-axes) and no anonymous user row (django-guardian; anonymous API calls are refused).
HOST_DEFAULTS: dict[str, Any] = {
    "AUTHENTICATION_BACKENDS": AUTHENTICATION_BACKENDS,
    "ANONYMOUS_USER_NAME": None,
    "SPECTACULAR_SETTINGS": SPECTACULAR_SETTINGS,
    "AXES_FAILURE_LIMIT": "catalog.auth_hardening.failure_limit",
    "AXES_COOLOFF_TIME": "catalog.auth_hardening.cool_off",
    "AXES_LOCKOUT_PARAMETERS": ["username", "ip_address"],
    "AXES_LOCKOUT_CALLABLE": "catalog.auth_hardening.lockout_response",
    "AXES_RESET_ON_SUCCESS": False,  # a success must not wipe the counters of other names tried from that address
    "AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT": False,  # a lockout lasts its period, retries do not extend it
    "AXES_HTTP_RESPONSE_CODE": 429,
    # terminals relay through Django Channels: one web process relays in memory; with several, set a Redis layer
    "CHANNEL_LAYERS": {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 2000}}},
    # behind a reverse proxy, set AXES_IPWARE_PROXY_COUNT / AXES_CLIENT_IP_CALLABLE so the client address is real
}


def apply_host_defaults() -> None:
    for name, value in HOST_DEFAULTS.items():
        if not settings.is_overridden(name):
            setattr(settings, name, value)
    # drf-spectacular builds the schema of `@extend_schema` views from DRF's DEFAULT_SCHEMA_CLASS: the only key
    # of the host's REST_FRAMEWORK Goldpath needs (every other API default is set on Goldpath's views themselves)
    rest = dict(getattr(settings, "REST_FRAMEWORK", {}) or {})
    if "DEFAULT_SCHEMA_CLASS" not in rest:
        settings.REST_FRAMEWORK = {**rest, "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
        from rest_framework.settings import api_settings

        api_settings.reload()


DEFAULTS: dict[str, Any] = {
    # where Goldpath keeps its files (Terraform state, keys, repositories, tool runtimes); made 0700
    "HOME": "",  # default: env GOLDPATH_HOME, else ~/.goldpath
    # pages: the layout they extend (blocks title, head, content) and where "Sign out" posts
    "BASE_TEMPLATE": "goldpath/base.html",
    "LOGOUT_URL": "",  # default: the host's `logout` URL name when it exists
    # sign-in hardening and API tokens (catalog.auth_hardening, catalog.api_tokens)
    "SIGNIN_MAX_FAILURES": 10,
    "SIGNIN_WINDOW_MINUTES": 15,
    "LOCKOUT_MINUTES": 15,
    "TOKEN_TTL_DAYS": 30,
    # vendor API keys and repository credentials are Fernet-encrypted with this key (default: env
    # GOLDPATH_FERNET_KEY, else one generated once into HOME/keys/fernet.key); the same on every machine
    "FERNET_KEY": "",
    # API throttling per signed-in user and per anonymous client address ("" turns one off)
    "API_THROTTLE_USER": "3000/minute",
    "API_THROTTLE_ANON": "600/minute",
    "REVIEW_PERIOD_DAYS": 180,
    "REVIEW_WARNING_DAYS": 14,
    "WEBHOOK_URL": "",
    "PORTAL_URL": "http://localhost:8000",
    "DEMO_PASSWORD": "",  # seed_demo's password for the demo users; default env GOLDPATH_DEMO_PASSWORD, else "goldpath"
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
    # the web tier's base URL as workspace agents reach it (default: GATEWAY_URL, else PORTAL_URL); the agent
    # dials ws:// or wss:// on it
    "AGENT_URL": "",
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
    # single sign-on (catalog.sso): OpenID Connect, endpoints from the issuer's discovery document
    "OIDC_ISSUER": "",  # empty: SSO is off (no button, its URLs are 404s)
    "OIDC_CLIENT_ID": "",
    "OIDC_CLIENT_SECRET": "",
    "OIDC_NAME": "SSO",  # the button says "Sign in with <name>"
    "OIDC_GROUPS_CLAIM": "groups",  # the claim the mapping rules read (a dotted path reaches a nested claim)
    "OIDC_SCOPES": "openid email profile",
    "OIDC_TOKEN_AUTH_METHOD": "",  # client_secret_basic or client_secret_post; empty: basic when the provider offers it
    "OIDC_DISCOVERY_TTL_S": 3600,  # discovery document and signing keys are cached this long
    "OIDC_TIMEOUT_S": 10,  # each call to the provider
    "LOCAL_PASSWORDS": True,  # False: the login page and POST auth/token/ refuse passwords (SSO only)
}


class GoldpathSettings:
    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown Goldpath setting {name!r}")
        return getattr(settings, "GOLDPATH", {}).get(name, DEFAULTS[name])


goldpath_settings = GoldpathSettings()

_secured: dict[Path, Path] = {}


def goldpath_home() -> Path:
    """GOLDPATH["HOME"] (or env GOLDPATH_HOME, else ~/.goldpath), created and kept private (0700) on first use."""
    from .homefiles import secure_home

    configured = goldpath_settings.HOME or os.environ.get("GOLDPATH_HOME") or Path.home() / ".goldpath"
    path = Path(configured)
    if path not in _secured:
        _secured[path] = secure_home(path)
    return _secured[path]


def demo_password() -> str:
    return goldpath_settings.DEMO_PASSWORD or os.environ.get("GOLDPATH_DEMO_PASSWORD") or "goldpath"


def base_template() -> str:
    return goldpath_settings.BASE_TEMPLATE or "goldpath/base.html"


def logout_url() -> str:
    """Where "Sign out" posts: GOLDPATH["LOGOUT_URL"] (a path or URL name), else the host's `logout` URL."""
    configured = goldpath_settings.LOGOUT_URL or "logout"
    if "/" in configured:
        return configured
    try:
        return reverse(configured)
    except NoReverseMatch:
        return ""
