"""The model gateway route of a sandbox's egress proxy: which requests are model calls, and where they go.

A run's CLIs reach Goldpath's model gateway at the proxy's own address (`http://127.0.0.1:3128/v1/...` inside
the sandbox). Such requests (origin-form, or absolute ones naming that address) are relayed to the web tier's
`/gateway/v1/...`, never anywhere else: only paths under `/v1/` of a strict grammar pass (no dot segments, no
percent-escapes), cookies and forwarding headers are dropped, and nothing but the configured gateway address
is ever connected to on this route (catalog.runners.egress serves it).
"""

from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from .http1 import Head

GATEWAY_PATH = re.compile(r"/v1/[A-Za-z0-9._/-]{1,200}(\?[A-Za-z0-9._=&-]{0,200})?")
GATEWAY_DROPPED = frozenset({"cookie", "forwarded", "x-real-ip", "host"})
GATEWAY_PREFIX = "/gateway"


@dataclass(frozen=True)
class GatewayRoute:
    """Where a sandbox's model calls go: the web tier's base URL (`GATEWAY_URL`), and the in-sandbox port."""

    scheme: str
    host: str
    port: int
    base_path: str
    listen_port: int = 3128

    @classmethod
    def from_url(cls, url: str, listen_port: int = 3128) -> GatewayRoute:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the gateway URL must be an http(s) URL with a host, not {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"), listen_port)

    def target(self, method: str, target: str) -> str | None:
        """The request's `/v1/...` path when it is meant for the gateway (else None: an ordinary request)."""
        if method == "CONNECT":
            return None
        if target.startswith("/"):
            return target
        lowered = target.lower()
        for name in ("127.0.0.1", "localhost"):
            prefix = f"http://{name}:{self.listen_port}"
            if lowered.startswith(prefix + "/"):
                return target[len(prefix) :]
        return None

    @staticmethod
    def path_allowed(path: str) -> bool:
        if not GATEWAY_PATH.fullmatch(path) or "//" in path:
            return False
        return not any(seg in (".", "..") for seg in path.split("?", 1)[0].split("/"))

    @property
    def web_port(self) -> int:
        """The port a Host header may leave out for this scheme."""
        return 443 if self.scheme == "https" else 80

    def upstream_path(self, path: str) -> str:
        return self.base_path + GATEWAY_PREFIX + path

    def connect(self, connect_timeout: float, idle_timeout: float) -> socket.socket:
        upstream = socket.create_connection((self.host, self.port), timeout=connect_timeout)
        if self.scheme == "https":
            upstream = ssl.create_default_context().wrap_socket(upstream, server_hostname=self.host)
        upstream.settimeout(idle_timeout)
        return upstream

    @staticmethod
    def clean(head: Head) -> Head:
        """The request head without cookies and forwarding headers (the web tier may trust those)."""
        kept = [
            (k, v)
            for k, v in head.headers
            if k.lower() not in GATEWAY_DROPPED and not k.lower().startswith("x-forwarded-")
        ]
        return Head(head.first, kept)
