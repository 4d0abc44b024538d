"""Masking: the one placeholder and the rules that hide secrets and sensitive values wherever they are shown.

Logs (sandbox output, git and Terraform text), pages, API responses and audit payloads all mask through these
functions, so a secret is hidden the same way everywhere. Django-free: the runners import it in processes that
have no Django.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MASK = "********"
# a payload key naming one of these holds a secret (audit payloads, whatever their shape)
SECRET_KEYS = ("password", "token", "secret", "api_key", "apikey", "key_value", "credential")


def is_secret_key(key: Any) -> bool:
    """True when a mapping key names a secret (`api_key`, `db_password`, `Token` ...)."""
    name = str(key).lower()
    return any(s in name for s in SECRET_KEYS)


def mask_secrets(value: Any) -> Any:
    """Mask values whose key names a secret, recursively, so payloads never leak credentials (an empty value
    stays as it is: it shows that nothing was given)."""
    if isinstance(value, dict):
        return {k: (MASK if is_secret_key(k) and v not in (None, "") else mask_secrets(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    return value


def mask_values(text: str, values: Iterable[str]) -> str:
    """Replace every secret value in `text` (longest first, so a secret containing another is hidden whole)."""
    for value in sorted((v for v in values if v), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def masked_tail(last4: str) -> str:
    """A stored key or credential as shown: the mask and its last four characters (`********6789`)."""
    return f"{MASK}{last4}"


def sensitive_parameters(schema: Iterable[Mapping[str, Any]]) -> set[str]:
    """The names of a template version's parameters (its `parameters` schema) declared sensitive."""
    return {p["name"] for p in schema if p.get("sensitive")}


def mask_parameters(schema: Iterable[Mapping[str, Any]], values: Mapping[str, Any]) -> dict[str, Any]:
    """A workspace's parameter values with those its template version declares sensitive masked."""
    sensitive = sensitive_parameters(schema)
    return {k: (MASK if k in sensitive else v) for k, v in values.items()}


def mask_outputs(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """`terraform output -json` shape -> {name: value}, sensitive values masked."""
    out: dict[str, Any] = {}
    for name, item in (raw or {}).items():
        if isinstance(item, dict) and "value" in item:
            out[name] = MASK if item.get("sensitive") else item["value"]
        else:
            out[name] = item
    return out
