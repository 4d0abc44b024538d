"""Sign-in hardening on top of django-axes: lockout settings, the lockout response, and audit events.

Axes counts failed sign-ins per username and, separately, per client address (AccessAttempt rows)
and refuses further attempts, even with the right password, once either count reaches
`GOLDPATH["SIGNIN_MAX_FAILURES"]`. Axes has a single cool-off: failures are counted while each is
within it of the previous one, and a lockout lasts it after the last counted failure. We use
max(`SIGNIN_WINDOW_MINUTES`, `LOCKOUT_MINUTES`) so neither promise is weakened.
An admin lifts a lockout with `manage.py axes_reset_username <name>` / `axes_reset_ip <addr>`
or by deleting the row under Admin > Axes > Access attempts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from . import audit
from .conf import goldpath_settings

LOCKOUT_MESSAGE = "Too many failed sign-ins. Sign-in is locked for {minutes} minutes; an admin can lift it sooner."


def max_failures() -> int:
    return int(goldpath_settings.SIGNIN_MAX_FAILURES)


def window_minutes() -> int:
    return int(goldpath_settings.SIGNIN_WINDOW_MINUTES)


def lockout_minutes() -> int:
    return int(goldpath_settings.LOCKOUT_MINUTES)


def failure_limit(request: HttpRequest | None = None, credentials: dict | None = None) -> int:
    """AXES_FAILURE_LIMIT: read at each attempt so a settings override takes effect at once."""
    return max_failures()


def cool_off(request: HttpRequest | None = None) -> timedelta:
    """AXES_COOLOFF_TIME: the counting window and the lockout period (see the module docstring)."""
    return timedelta(minutes=max(window_minutes(), lockout_minutes()))


def lockout_message() -> str:
    return LOCKOUT_MESSAGE.format(minutes=int(cool_off().total_seconds() // 60))


class SigninLockoutBackend(AxesStandaloneBackend):
    """Axes' lockout check, first in AUTHENTICATION_BACKENDS.

    Every network sign-in (the login page's form, the API token serializer) passes the request;
    `authenticate()` without one is an in-process caller (a management command, a test, seeding),
    which has no client to throttle, so it is let through to the next backend instead of raising.
    """

    def authenticate(self, request: HttpRequest | None, username: str | None = None, password=None, **kwargs: Any):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: JSON 429 for API callers, the login page with the message otherwise."""
    message = lockout_message()
    wants_json = request.path.startswith("/api/") or (
        original_response is not None and original_response.get("Content-Type", "").startswith("application/json")
    )
    if wants_json:
        return JsonResponse({"detail": message}, status=429)
    context = {"form": AuthenticationForm(request), "locked_out": True, "lockout_message": message}
    return render(request, "registration/login.html", context, status=429)


def _client_address(request: Any) -> str | None:
    if request is None:
        return None
    return getattr(request, "axes_ip_address", None) or request.META.get("REMOTE_ADDR")


def _user_target(username: str | None) -> dict[str, Any]:
    user = get_user_model().objects.filter(username=username).first() if username else None
    if user is not None:
        return {"target": user, "target_repr": user.username}
    return {"target_type": "user", "target_repr": username or ""}


@receiver(user_login_failed, dispatch_uid="goldpath.auth.login_failed")
def record_login_failed(sender: Any, credentials: dict, request: Any = None, **kwargs: Any) -> None:
    """auth.login_failed for every refused sign-in, a wrong password or one refused by a lockout."""
    username = credentials.get("username")
    audit.record(
        actor="anonymous",
        verb="auth.login_failed",
        **_user_target(username),
        payload={
            "username": username or "",
            "client_address": _client_address(request),
            "path": getattr(request, "path", "") if request is not None else "",
            "locked_out": bool(getattr(request, "axes_locked_out", False)),
        },
    )


@receiver(user_locked_out, dispatch_uid="goldpath.auth.locked_out")
def record_locked_out(sender: Any, request: Any, username: str | None, ip_address: str | None, **kwargs: Any) -> None:
    """auth.locked_out once, when the failure that crosses the limit is counted (not per refused retry)."""
    if getattr(request, "axes_failures_since_start", None) is None:
        return
    audit.record(
        actor="anonymous",
        verb="auth.locked_out",
        **_user_target(username),
        payload={
            "username": username or "",
            "client_address": ip_address,
            "failures": request.axes_failures_since_start,
            "lockout_minutes": int(cool_off().total_seconds() // 60),
        },
    )
