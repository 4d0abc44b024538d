"""Goldpath settings.

With no environment set, everything runs on embedded defaults under GOLDPATH_HOME (SQLite and a
file-system broker), so a laptop needs no service. DATABASE_URL and CELERY_BROKER_URL switch to
PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url

import catalog.celery as goldpath_celery
import catalog.conf as goldpath
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

# Goldpath plugs into this standalone host exactly as into any portal (README: "Add Goldpath to your Django portal")
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    *goldpath.INSTALLED_APPS,
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    *goldpath.MIDDLEWARE,
]

ROOT_URLCONF = "portal.urls"
CSRF_FAILURE_VIEW = "catalog.views.errors.csrf_failure"  # Goldpath's branded "form expired" page
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

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

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "goldpath:tool-list"
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
# Terminals (Django Channels): with Redis the web processes, workers and workspaces may sit on different hosts;
# without it one web process relays in memory (`make run`)
CHANNELS_REDIS_URL = os.environ.get("GOLDPATH_CHANNELS_REDIS_URL") or (
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else ""
)
CHANNEL_LAYERS = {
    # the pub/sub layer: a terminal's frames are live or gone (no queue to persist), and it relays several times
    # the messages per second of channels_redis.core under load (benchmarks/bench_terminal.py)
    "default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [CHANNELS_REDIS_URL]}}
    if CHANNELS_REDIS_URL
    else {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 2000}}
}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = goldpath_celery.TASK_ROUTES
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(GOLDPATH_HOME / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = goldpath_celery.BEAT_SCHEDULE

# --- Goldpath app settings (read through catalog.conf.goldpath_settings) ----------------------
GOLDPATH = {
    "HOME": GOLDPATH_HOME,
    "FERNET_KEY": os.environ.get("GOLDPATH_FERNET_KEY", ""),
    "SIGNIN_MAX_FAILURES": int(os.environ.get("GOLDPATH_SIGNIN_MAX_FAILURES", "10")),
    "SIGNIN_WINDOW_MINUTES": int(os.environ.get("GOLDPATH_SIGNIN_WINDOW_MINUTES", "15")),
    "LOCKOUT_MINUTES": int(os.environ.get("GOLDPATH_LOCKOUT_MINUTES", "15")),
    "TOKEN_TTL_DAYS": int(os.environ.get("GOLDPATH_TOKEN_TTL_DAYS", "30")),
    "REVIEW_PERIOD_DAYS": int(os.environ.get("GOLDPATH_REVIEW_PERIOD_DAYS", "180")),
    "REVIEW_WARNING_DAYS": 14,
    "WEBHOOK_URL": os.environ.get("GOLDPATH_WEBHOOK_URL", ""),
    "PORTAL_URL": os.environ.get("GOLDPATH_PORTAL_URL", "http://localhost:8000"),
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
    "AGENT_URL": os.environ.get("GOLDPATH_AGENT_URL", ""),
    "UPSTREAM_ANTHROPIC": os.environ.get("GOLDPATH_UPSTREAM_ANTHROPIC", "https://api.anthropic.com"),
    "UPSTREAM_OPENAI": os.environ.get("GOLDPATH_UPSTREAM_OPENAI", "https://api.openai.com"),
    "TOOLS_DIR": os.environ.get("GOLDPATH_TOOLS_DIR", ""),
    "GATEWAY_RECORD_IN_BACKGROUND": env_bool("GOLDPATH_GATEWAY_RECORD_IN_BACKGROUND", True),
    "METRICS_TOKEN": os.environ.get("GOLDPATH_METRICS_TOKEN", ""),
    # single sign-on (catalog.sso); SSO is off while OIDC_ISSUER is empty
    "OIDC_ISSUER": os.environ.get("GOLDPATH_OIDC_ISSUER", ""),
    "OIDC_CLIENT_ID": os.environ.get("GOLDPATH_OIDC_CLIENT_ID", ""),
    "OIDC_CLIENT_SECRET": os.environ.get("GOLDPATH_OIDC_CLIENT_SECRET", ""),
    "OIDC_NAME": os.environ.get("GOLDPATH_OIDC_NAME", "SSO"),
    "OIDC_GROUPS_CLAIM": os.environ.get("GOLDPATH_OIDC_GROUPS_CLAIM", "groups"),
    "OIDC_SCOPES": os.environ.get("GOLDPATH_OIDC_SCOPES", "openid email profile"),
    "LOCAL_PASSWORDS": env_bool("GOLDPATH_LOCAL_PASSWORDS", True),
}

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
