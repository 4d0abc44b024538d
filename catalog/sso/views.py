"""SSO pages: the redirect to the provider, the callback, and the mapping rules (admins).

The sign-in views are mozilla-django-oidc's, reading Goldpath's settings and discovery (catalog.sso.config) and
answering 404 while SSO is off. Every way a callback can fail (an error from the provider, a state that is not
this browser's, a tampered code or token, a provider that cannot be reached, a deactivated account) ends on a
page that says so, with an audit event, never a 500.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, resolve_url
from django.views.decorators.http import require_http_methods, require_POST
from django.views.generic import View
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from .. import audit
from ..conf import goldpath_settings
from ..forms import add_domain_errors
from ..models import SsoMappingRule
from ..services.errors import DomainError, NotPermitted
from ..views.rendering import render
from . import rules as rule_services
from .backend import PROVIDER_ERRORS
from .config import display_name, oidc_setting, sso_enabled
from .discovery import DiscoveryError, discovery
from .forms import MappingRuleForm
from .sync import SignInRefused


def _require_sso() -> None:
    if not sso_enabled():
        raise Http404("Single sign-on is not configured.")


def sso_failure(request: HttpRequest, message: str, *, reason: str, status: int = 400) -> HttpResponse:
    """The page a failed SSO sign-in ends on, and its audit event."""
    audit.record(
        actor="anonymous",
        verb="auth.login_failed",
        target_type="user",
        payload={"method": "sso", "reason": reason, "client_address": request.META.get("REMOTE_ADDR")},
    )
    context = {"message": message, "sso_name": display_name(), **_links()}
    return render(request, "catalog/sso_error.html", context, status=status)


class SsoLoginView(OIDCAuthenticationRequestView):
    """Redirects to the provider's authorization endpoint with state, nonce and a PKCE challenge."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, **kwargs: Any) -> None:
        View.__init__(self, **kwargs)  # the endpoint is read when used, not when the view is built

    def get(self, request: HttpRequest) -> HttpResponse:
        _require_sso()
        try:
            self.OIDC_OP_AUTH_ENDPOINT = oidc_setting("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except DiscoveryError as exc:
            return sso_failure(request, str(exc), reason="provider_unavailable", status=502)
        self.OIDC_RP_CLIENT_ID = oidc_setting("OIDC_RP_CLIENT_ID")
        return super().get(request)


class SsoCallbackView(OIDCAuthenticationCallbackView):
    """Checks state, exchanges the code (with the PKCE verifier), checks the ID token, signs the user in."""

    get_settings = staticmethod(oidc_setting)
    failure: tuple[str, str, int] | None = None

    def get(self, request: HttpRequest) -> HttpResponse:
        _require_sso()
        name = display_name()
        if request.GET.get("error"):
            self.failure = (f"{name} did not sign you in ({request.GET['error'][:60]}).", "provider_error", 400)
        elif not request.GET.get("code") or not request.GET.get("state"):
            self.failure = ("This sign-in link is incomplete. Start again.", "bad_callback", 400)
            return self.login_failure()
        try:
            issuer = discovery()["issuer"]
            if request.GET.get("iss") and request.GET["iss"] != issuer:  # RFC 9207: an answer from another issuer
                self.failure = ("This sign-in answer came from another provider.", "wrong_issuer", 400)
                return self.login_failure()
            return super().get(request)
        except SignInRefused as exc:
            self.failure = (exc.message, exc.reason, 403)
        except SuspiciousOperation:
            self.failure = ("This sign-in could not be verified. Start again.", "verification_failed", 400)
        except DiscoveryError as exc:
            self.failure = (str(exc), "provider_unavailable", 502)
        except PROVIDER_ERRORS:
            self.failure = (f"{name} refused to complete this sign-in. Start again.", "provider_refused", 400)
        except IntegrityError:
            self.failure = ("Another sign-in of this account was under way. Try again.", "conflict", 409)
        except DomainError as exc:  # what the provider said about you is not valid here (a page, never a 500)
            self.failure = (f"{name} sent details Goldpath cannot use: {exc.message}", "invalid_claims", 400)
        return self.login_failure()

    def login_failure(self) -> HttpResponse:
        if self.failure is None:
            if "oidc_states" not in self.request.session:  # this browser never started a sign-in
                self.failure = ("This sign-in link is not valid or has expired. Start again.", "bad_state", 400)
            else:  # the backends returned nobody: Django's user_login_failed signal wrote the audit event
                context = {"message": "Sign-in was refused.", "sso_name": display_name(), **_links()}
                return render(self.request, "catalog/sso_error.html", context, status=403)
        message, reason, status = self.failure
        return sso_failure(self.request, message, reason=reason, status=status)


def _links() -> dict[str, str]:
    return {"retry_url": resolve_url("goldpath:sso-login"), "login_url": resolve_url(settings.LOGIN_URL)}


# --- mapping rules (admins) ---------------------------------------------------------------------------------


def _admins_only(request: HttpRequest) -> None:
    if not rule_services.can_manage_rules(request.user):
        raise PermissionDenied(rule_services.DENIED)


def _rules_page(request: HttpRequest, form: MappingRuleForm, status: int = 200) -> HttpResponse:
    rules = SsoMappingRule.objects.select_related("team").order_by("claim_value", "pk")
    context = {
        "rules": rules,
        "form": form,
        "sso_enabled": sso_enabled(),
        "sso_name": display_name(),
        "claim_name": goldpath_settings.OIDC_GROUPS_CLAIM,
    }
    return render(request, "catalog/sso_mappings.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def mapping_list(request: HttpRequest) -> HttpResponse:
    _admins_only(request)
    if request.method != "POST":
        return _rules_page(request, MappingRuleForm())
    form = MappingRuleForm(request.POST)
    if form.is_valid():
        try:
            rule = rule_services.sso_rule_create(actor=request.user, **form.service_kwargs())
        except NotPermitted as exc:
            raise PermissionDenied(exc.message) from exc
        except DomainError as exc:
            add_domain_errors(form, exc)
        else:
            messages.success(request, f"Added rule: {rule}.")
            return redirect("goldpath:sso-mappings")
    return _rules_page(request, form, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def mapping_edit(request: HttpRequest, pk: int) -> HttpResponse:
    _admins_only(request)
    rule = get_object_or_404(SsoMappingRule.objects.select_related("team"), pk=pk)
    status = 200
    if request.method == "POST":
        form = MappingRuleForm(request.POST)
        if form.is_valid():
            try:
                rule = rule_services.sso_rule_update(rule=rule, actor=request.user, **form.service_kwargs())
            except NotPermitted as exc:
                raise PermissionDenied(exc.message) from exc
            except DomainError as exc:
                add_domain_errors(form, exc)
            else:
                messages.success(request, f"Saved rule: {rule}.")
                return redirect("goldpath:sso-mappings")
        status = 400
    else:
        form = MappingRuleForm.for_rule(rule)
    return render(request, "catalog/sso_mapping_edit.html", {"rule": rule, "form": form}, status=status)


@login_required
@require_POST
def mapping_delete(request: HttpRequest, pk: int) -> HttpResponse:
    _admins_only(request)
    rule = get_object_or_404(SsoMappingRule.objects.select_related("team"), pk=pk)
    label = str(rule)
    try:
        rule_services.sso_rule_delete(rule=rule, actor=request.user)
    except NotPermitted as exc:
        raise PermissionDenied(exc.message) from exc
    messages.success(request, f"Deleted rule: {label}.")
    return redirect("goldpath:sso-mappings")
