"""Request id middleware: honours an incoming X-Request-ID, returns it, and makes it visible to services."""

from __future__ import annotations

import re

from django.http import HttpRequest, HttpResponse

from .context import reset_request_id, set_request_id

_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        token = set_request_id(incoming if _SAFE.match(incoming) else None)
        try:
            from .context import get_request_id

            request.request_id = get_request_id()
            response = self.get_response(request)
            response["X-Request-ID"] = request.request_id
            return response
        finally:
            reset_request_id(token)
