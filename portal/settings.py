"""Goldpath settings.

With no environment set, everything runs on embedded defaults under GOLDPATH_HOME (SQLite and a
file-system broker), so a laptop needs no service. DATABASE_URL and CELERY_BROKER_URL switch to
PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url

from catalog.homefiles import read_or_create_secret, secure_home

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# umask 077 for this process, GOLDPATH_HOME 0700 and an existing one tightened (catalog/homefiles.py):
# it holds the SQLite database (tokens, sessions), Terraform state and keys.
GOLDPATH_HOME = secure_home(os.environ.get("GOLDPATH_HOME", BASE_DIR / "var"))

DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    # a laptop: a random key made once, kept 0600 in GOLDPATH_HOME (never a constant in code)
    SECRET_KEY = read_or_create_secret(
        GOLDPATH_HOME / "keys" / "django-secret-key", lambda: secrets.token_urlsafe(64).encode()
    ).decode()
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "*" if DEBUG else "").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "axes",
    "catalog",
]

MIDDLEWARE = [
    "catalog.metrics.middleware.HttpMetricsMiddleware",  # first: it times and counts every request, by view name
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "catalog.middleware.RequestIdMiddleware",
    # last: turns a sign-in refused by a lockout into the lockout page (catalog.auth_hardening)
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "catalog.context_processors.goldpath",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------
SQLITE_PATH = GOLDPATH_HOME / "goldpath.sqlite3"
DATABASES = {
    # persistent connections (checked before reuse): a model-gateway call must not pay for a new connection
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{SQLITE_PATH}",
        conn_max_age=int(os.environ.get("GOLDPATH_DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + busy timeout + IMMEDIATE transactions: concurrent writers wait instead of failing
    # with "database is locked" (a deferred transaction cannot upgrade its lock safely).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
    }
    # A file test database, so a real Celery worker process can see what the tests wrote.
    DATABASES["default"]["TEST"] = {"NAME": str(GOLDPATH_HOME / "test-goldpath.sqlite3")}
DATABASE_IS_POSTGRES = DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # first: refuses a locked-out user or client address before any password is checked
    "catalog.auth_hardening.SigninLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; anonymous API calls are refused
GUARDIAN_RAISE_403 = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
]

# --- sign-in hardening (django-axes, see catalog/auth_hardening.py) and API token expiry ------
GOLDPATH_SIGNIN_MAX_FAILURES = int(os.environ.get("GOLDPATH_SIGNIN_MAX_FAILURES", "10"))
GOLDPATH_SIGNIN_WINDOW_MINUTES = int(os.environ.get("GOLDPATH_SIGNIN_WINDOW_MINUTES", "15"))
GOLDPATH_LOCKOUT_MINUTES = int(os.environ.get("GOLDPATH_LOCKOUT_MINUTES", "15"))
GOLDPATH_TOKEN_TTL_DAYS = int(os.environ.get("GOLDPATH_TOKEN_TTL_DAYS", "30"))
AXES_FAILURE_LIMIT = "catalog.auth_hardening.failure_limit"
AXES_COOLOFF_TIME = "catalog.auth_hardening.cool_off"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # two counters: per user, per client address
AXES_LOCKOUT_CALLABLE = "catalog.auth_hardening.lockout_response"
AXES_RESET_ON_SUCCESS = False  # a success must not wipe the counters of other names tried from that address
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # a lockout lasts its period, retries do not extend it
AXES_HTTP_RESPONSE_CODE = 429
# behind a reverse proxy, set AXES_IPWARE_PROXY_COUNT / AXES_CLIENT_IP_CALLABLE so the client address is real

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "catalog:tool-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = GOLDPATH_HOME / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = GOLDPATH_HOME / "media"

# --- mail and notifications ---------------------------------------------------------------
EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.filebased.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = GOLDPATH_HOME / "mail"
DEFAULT_FROM_EMAIL = os.environ.get("GOLDPATH_FROM_EMAIL", "goldpath@localhost")

# --- REST framework ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "catalog.api_tokens.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON with depth and size limits (a deeply nested body is a 400, not a RecursionError)
    "DEFAULT_PARSER_CLASSES": [
        "catalog.api.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "catalog.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "catalog.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Goldpath API",
    "DESCRIPTION": "Approved AI tools, access policies, golden-path workspaces, agent runs and audit.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    # served from our own static files: the docs work offline
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "DataClassificationEnum": "catalog.models.tools.DataClassification",
        "ToolKindEnum": "catalog.models.tools.ToolKind",
        "UsageKindEnum": "catalog.models.usage.UsageKind",
        "AgentRunStatusEnum": "catalog.models.agents.AgentRunStatus",
        "AgentGroupStatusEnum": "catalog.models.agents.AgentGroupStatus",
    },
}

# --- Celery -----------------------------------------------------------------------------------
BROKER_DIR = GOLDPATH_HOME / "broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "filesystem://"
if CELERY_BROKER_URL.startswith("filesystem"):
    (BROKER_DIR / "queue").mkdir(parents=True, exist_ok=True)
    (BROKER_DIR / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "staging_folder": str(BROKER_DIR / "staging"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
    # kombu's file-system transport, but a message lands in the queue folder whole (see portal/broker.py)
    CELERY_BROKER_TRANSPORT = "portal.broker:Transport"
else:
    # Longer than the longest build: the database, not the broker, decides whether a job runs.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600}
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "catalog.tasks.provisioning.*": {"queue": "provisioning"},
    "catalog.tasks.agents.*": {"queue": "agents"},
    "catalog.tasks.reports.*": {"queue": "reports"},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(GOLDPATH_HOME / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
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

# --- Goldpath app settings (read through catalog.conf.goldpath_settings) ----------------------
GOLDPATH = {
    "REVIEW_PERIOD_DAYS": int(os.environ.get("GOLDPATH_REVIEW_PERIOD_DAYS", "180")),
    "REVIEW_WARNING_DAYS": 14,
    "WEBHOOK_URL": os.environ.get("GOLDPATH_WEBHOOK_URL", ""),
    "PORTAL_URL": os.environ.get("GOLDPATH_PORTAL_URL", "http://localhost:8000"),
    "DEMO_PASSWORD": os.environ.get("GOLDPATH_DEMO_PASSWORD", "goldpath"),
    "AGENT_TEAM_CONCURRENCY": int(os.environ.get("GOLDPATH_AGENT_TEAM_CONCURRENCY", "8")),
    "AGENT_REAPER_BOUND_S": int(os.environ.get("GOLDPATH_AGENT_REAPER_BOUND_S", "30")),
    "AGENT_ALLOW_UNSANDBOXED": env_bool("GOLDPATH_AGENT_ALLOW_UNSANDBOXED", False),
    "PROVENANCE_KEY_PATH": os.environ.get("GOLDPATH_PROVENANCE_KEY_PATH", ""),
    "BUILD_HEARTBEAT_TIMEOUT_S": int(os.environ.get("GOLDPATH_BUILD_HEARTBEAT_TIMEOUT_S", "60")),
    "BUILD_HEARTBEAT_INTERVAL_S": float(os.environ.get("GOLDPATH_BUILD_HEARTBEAT_INTERVAL_S", "2")),
    "DEFAULT_MAX_WORKSPACES": int(os.environ.get("GOLDPATH_MAX_WORKSPACES", "10")),
    "DEFAULT_MAX_CONCURRENT_BUILDS": int(os.environ.get("GOLDPATH_MAX_CONCURRENT_BUILDS", "5")),
    # the model gateway: where workers reach the web tier, and the vendor upstreams (`demo`: offline demo model)
    "GATEWAY_URL": os.environ.get("GOLDPATH_GATEWAY_URL", ""),
    "UPSTREAM_ANTHROPIC": os.environ.get("GOLDPATH_UPSTREAM_ANTHROPIC", "https://api.anthropic.com"),
    "UPSTREAM_OPENAI": os.environ.get("GOLDPATH_UPSTREAM_OPENAI", "https://api.openai.com"),
    "TOOLS_DIR": os.environ.get("GOLDPATH_TOOLS_DIR", ""),
    "GATEWAY_RECORD_IN_BACKGROUND": env_bool("GOLDPATH_GATEWAY_RECORD_IN_BACKGROUND", True),
    "METRICS_TOKEN": os.environ.get("GOLDPATH_METRICS_TOKEN", ""),
}

# Vendor API keys and repository credentials are Fernet-encrypted with this key (urlsafe base64 of
# 32 bytes). Unset, catalog.agents.crypto generates one once into GOLDPATH_HOME/keys/fernet.key (0600):
# set it (the same value on every machine) when web and workers run on more than one machine.
GOLDPATH_FERNET_KEY = os.environ.get("GOLDPATH_FERNET_KEY", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("GOLDPATH_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    # workers may reach the model gateway on an internal http:// GATEWAY_URL: a redirect would break every CLI call
    SECURE_REDIRECT_EXEMPT = [r"^gateway/v1/"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
