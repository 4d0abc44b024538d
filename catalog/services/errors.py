"""Domain errors; the API maps them to HTTP status codes (see catalog.api.errors)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, errors: dict[str, Any] | None = None, reasons: list | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}
        self.reasons = reasons or []


class InvalidInput(DomainError):
    """Bad input: 400 with field errors."""

    status_code = 400
    code = "invalid"


class NotPermitted(DomainError):
    """The actor's role may not do this: 403."""

    status_code = 403
    code = "permission_denied"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class TransitionNotAllowed(DomainError):
    """Not allowed now (wrong state, broken approval rule, another job running): 409."""

    status_code = 409
    code = "conflict"


class QuotaExceeded(DomainError):
    status_code = 429
    code = "quota_exceeded"
