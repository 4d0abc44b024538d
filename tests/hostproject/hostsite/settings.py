"""Settings of the test host, as `startproject` wrote them plus the lines README's plug-in section adds.

Its REST_FRAMEWORK defaults are deliberately open (AllowAny, no pagination, DRF's own error handler) for its
own API: Goldpath's API must not inherit them. HOST_BREAK drops one part of the contract, for the checks' test.
"""

import os
from pathlib import Path

import catalog.conf as goldpath

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "acme-host-test-only-key-0123456789abcdefghijklmnopqrstuvwxyz"
DEBUG = True  # as startproject writes it (seed_demo refuses to run with DEBUG off)
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "hostsite",
    *goldpath.INSTALLED_APPS,
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    *goldpath.MIDDLEWARE,
]

ROOT_URLCONF = "hostsite.urls"
WSGI_APPLICATION = "hostsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["HOST_DB"], "OPTIONS": {"timeout": 30}}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "Europe/Berlin"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

REST_FRAMEWORK = {
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.BasicAuthentication"],
    "DEFAULT_PAGINATION_CLASS": None,
    "EXCEPTION_HANDLER": "rest_framework.views.exception_handler",
}

GOLDPATH = {
    "HOME": os.environ["HOST_GOLDPATH_HOME"],
    "BASE_TEMPLATE": "host_base.html",
    "PORTAL_URL": os.environ.get("HOST_ORIGIN", "http://127.0.0.1:8000"),
}

CELERY_BROKER_URL = os.environ.get("HOST_BROKER_URL") or "filesystem://"
if CELERY_BROKER_URL == "filesystem://":  # no Redis on this machine: kombu's file-system transport
    _folder = Path(os.environ["HOST_GOLDPATH_HOME"]).parent / "broker"
    for _sub in ("queue", "processed"):
        (_folder / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_folder / "queue"),
        "data_folder_out": str(_folder / "queue"),
        "processed_folder": str(_folder / "processed"),
        "control_folder": str(_folder / "control"),
        "polling_interval": 0.1,
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

_break = os.environ.get("HOST_BREAK", "")
if _break == "middleware":
    MIDDLEWARE.remove("axes.middleware.AxesMiddleware")
elif _break == "apps":
    INSTALLED_APPS.remove("drf_spectacular_sidecar")
elif _break == "backends":
    AUTHENTICATION_BACKENDS = list(reversed(goldpath.AUTHENTICATION_BACKENDS))
elif _break == "setting":
    GOLDPATH["REVIEW_PERIOD"] = 90
