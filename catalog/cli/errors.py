"""What the CLI says when something goes wrong: the API's own message, one line per problem."""

from __future__ import annotations

from typing import Any


class CliError(Exception):
    """A failure to show the user (no traceback) and exit with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ApiError(CliError):
    """The portal answered with an error status; `message` is its own text, `body` what it sent."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message, exit_code=1)
        self.status = status
        self.body = body


def _flatten(value: Any, path: str = "") -> list[tuple[str, str]]:
    """(field path, message) pairs from DRF's nested field errors."""
    if isinstance(value, dict):
        pairs: list[tuple[str, str]] = []
        for key, item in value.items():
            pairs += _flatten(item, f"{path}.{key}" if path else str(key))
        return pairs
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return [(path, " ".join(str(v) for v in value))] if value else []
        pairs = []
        for index, item in enumerate(value):
            pairs += _flatten(item, f"{path}[{index}]")
        return pairs
    return [(path, str(value))]


def api_message(status: int, body: Any) -> str:
    """The lines of an error body: `detail`, then each field's errors, then the policy's reasons."""
    lines: list[str] = []
    if isinstance(body, dict):
        if body.get("detail"):
            lines.append(str(body["detail"]))
        fields = body.get("errors")
        if not isinstance(fields, dict):
            fields = {k: v for k, v in body.items() if k not in ("detail", "code", "reasons", "errors")}
        for field, text in _flatten(fields):
            plain = field in ("", "non_field_errors") or field.startswith("non_field_errors")
            lines.append(text if plain else f"{field}: {text}")
        for reason in body.get("reasons") or []:
            lines.append(f"- {reason.get('message') if isinstance(reason, dict) else reason}")
    elif isinstance(body, list):
        lines += [text for _, text in _flatten(body)]
    return "\n".join(line for line in lines if line) or f"The portal answered HTTP {status}."
