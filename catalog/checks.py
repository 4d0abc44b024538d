"""System checks for the host contract: a host missing an app, a middleware or a setting is told how to fix it.

The message names which one is missing. The checks run on `manage.py check`, and before every
`runserver`/`migrate`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from . import conf

DJANGO_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
NEEDED_BEFORE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
HINT = 'See README "Add Goldpath to your Django portal".'


def _missing(setting: str, needed: list[str], hint: str, check_id: str) -> list:
    present = list(getattr(settings, setting))
    return [
        Error(f"Goldpath needs {name!r} in {setting}.", hint=hint, id=check_id) for name in needed if name not in present
    ]


@register(Tags.compatibility)
def host_contract(app_configs: Any = None, **kwargs: Any) -> list:
    errors = _missing(
        "INSTALLED_APPS",
        [*DJANGO_APPS, *conf.INSTALLED_APPS],
        f"Add *catalog.conf.INSTALLED_APPS (and Django's {', '.join(DJANGO_APPS)}). {HINT}",
        "goldpath.E001",
    )
    errors += _missing(
        "MIDDLEWARE",
        [*NEEDED_BEFORE, *conf.MIDDLEWARE],
        f"Append *catalog.conf.MIDDLEWARE after Django's session, auth and message middleware. {HINT}",
        "goldpath.E002",
    )
    middleware = list(settings.MIDDLEWARE)
    if all(name in middleware for name in [*NEEDED_BEFORE, *conf.MIDDLEWARE]):
        last_needed = max(middleware.index(name) for name in NEEDED_BEFORE)
        if middleware.index(conf.MIDDLEWARE[-1]) < last_needed:
            errors.append(
                Error(
                    "catalog.conf.MIDDLEWARE must come after Django's session, auth and message middleware.",
                    hint=HINT,
                    id="goldpath.E003",
                )
            )
    errors += _missing(
        "AUTHENTICATION_BACKENDS",
        conf.AUTHENTICATION_BACKENDS,
        "Leave AUTHENTICATION_BACKENDS unset, or include *catalog.conf.AUTHENTICATION_BACKENDS (the lockout backend "
        "first).",
        "goldpath.E004",
    )
    backends = list(settings.AUTHENTICATION_BACKENDS)
    if all(backend in backends for backend in conf.AUTHENTICATION_BACKENDS):
        order = [backends.index(backend) for backend in conf.AUTHENTICATION_BACKENDS]
        if order != sorted(order):
            errors.append(
                Error(
                    "Goldpath's authentication backends are out of order: the sign-in lockout must come first and "
                    "the SSO backend before ModelBackend (it refuses passwords when local passwords are off).",
                    hint=f"Use this order: {', '.join(conf.AUTHENTICATION_BACKENDS)}.",
                    id="goldpath.E008",
                )
            )
    errors += _goldpath_dict()
    errors += _templates()
    return errors


def _goldpath_dict() -> list:
    value = getattr(settings, "GOLDPATH", {})
    if not isinstance(value, dict):
        return [Error("GOLDPATH must be a dict.", hint='e.g. GOLDPATH = {"HOME": BASE_DIR / "goldpath"}', id="goldpath.E005")]
    problems: list = [
        Warning(
            f"GOLDPATH[{key!r}] is not a Goldpath setting; it is ignored.",
            hint=f"Known settings: {', '.join(sorted(conf.DEFAULTS))}.",
            id="goldpath.W001",
        )
        for key in value
        if key not in conf.DEFAULTS
    ]
    try:
        conf.goldpath_home()
    except Exception as exc:  # noqa: BLE001 - any reason the folder cannot be used is reported by name
        problems.append(
            Error(
                f"GOLDPATH['HOME'] cannot be used: {exc}",
                hint="Point GOLDPATH['HOME'] (or env GOLDPATH_HOME) at a folder of Goldpath's own.",
                id="goldpath.E006",
            )
        )
    return problems


def _templates() -> list:
    for engine in settings.TEMPLATES:
        if engine.get("BACKEND") == "django.template.backends.django.DjangoTemplates" and (
            engine.get("APP_DIRS") or "loaders" in engine.get("OPTIONS", {})
        ):
            return []
    return [
        Error(
            "Goldpath's pages need a DjangoTemplates engine that loads app templates.",
            hint='Set "APP_DIRS": True on your DjangoTemplates engine (the default of startproject).',
            id="goldpath.E007",
        )
    ]
