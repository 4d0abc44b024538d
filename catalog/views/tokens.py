"""Your API token, from the browser: see when it expires and make a new one (shown once). People who sign in
with SSO have no password for `POST /api/v1/auth/token/`; this page is how they get a token for the CLI."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.views.decorators.http import require_http_methods

from .. import api_tokens
from .rendering import render


@login_required
@require_http_methods(["GET", "POST"])
def api_token(request):
    new_key = None
    if request.method == "POST":
        new_key = api_tokens.token_rotate(user=request.user).key
    tokens = [api_tokens.token_info(t) for t in api_tokens.tokens_of(request.user)]
    return render(
        request,
        "catalog/api_token.html",
        {"tokens": tokens, "new_key": new_key, "portal_url": request.build_absolute_uri("/").rstrip("/")},
    )
