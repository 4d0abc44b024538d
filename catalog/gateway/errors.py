"""Gateway answers in each vendor's own error format, so the CLI shows our reason as it would the vendor's.

Anthropic: `{"type": "error", "error": {"type": "permission_error", "message": ...}}`.
OpenAI: `{"error": {"message": ..., "type": ..., "param": null, "code": ...}}` (429 is `insufficient_quota`,
which Codex and the OpenAI SDKs treat as final rather than retrying).
Refusals carry `x-should-retry: false` (honoured by the Anthropic and OpenAI SDKs) so a CLI does not retry a
decision that will not change; upstream failures (502) may be retried.
"""

from __future__ import annotations

import json

from django.http import HttpResponse

ANTHROPIC, OPENAI = "anthropic", "openai"

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    426: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
}
_OPENAI_TYPES = {
    401: "invalid_request_error",
    403: "permission_error",
    429: "insufficient_quota",
    500: "server_error",
    502: "server_error",
}
_OPENAI_CODES = {401: "invalid_api_key", 429: "insufficient_quota"}


class GatewayError(Exception):
    """A call the gateway answers itself: `code` is our short reason code, `message` what the CLI shows."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.body: bytes | None = None  # the exact answer, once recorded


def error_body(flavor: str, status: int, code: str, message: str) -> bytes:
    if flavor == ANTHROPIC:
        payload: dict = {
            "type": "error",
            "error": {"type": _ANTHROPIC_TYPES.get(status, "api_error"), "message": message},
        }
    else:
        payload = {
            "error": {
                "message": message,
                "type": _OPENAI_TYPES.get(status, "invalid_request_error"),
                "param": None,
                "code": _OPENAI_CODES.get(status, code),
            }
        }
    return json.dumps(payload).encode()


def error_response(flavor: str, status: int, code: str, message: str, *, body: bytes | None = None) -> HttpResponse:
    response = HttpResponse(
        body if body is not None else error_body(flavor, status, code, message),
        status=status,
        content_type="application/json",
    )
    response["x-goldpath-gateway"] = code
    if status < 500:
        response["x-should-retry"] = "false"
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="goldpath-gateway"'
    return response
