"""Egress proxy on a Unix socket: the only way out of a sandbox whose policy names hosts.

Speaks HTTP CONNECT (for HTTPS) and plain absolute-URI HTTP, allows hosts by exact name or
`*.suffix`, reports every attempt through `on_connection`, and answers 403 to the rest.
"""

from __future__ import annotations

import os
import select
import socket
import socketserver
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

OnConnection = Callable[[str, int, bool], None]


def host_allowed(host: str, allowed_hosts: list[str]) -> bool:
    """Exact match, or `*.suffix` matching any subdomain of suffix (not suffix itself)."""
    host = host.lower().rstrip(".")
    for pattern in allowed_hosts:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


def _pipe(a: socket.socket, b: socket.socket) -> None:
    socks = [a, b]
    while True:
        readable, _, _ = select.select(socks, [], [], 60)
        if not readable:
            return
        for s in readable:
            data = s.recv(65536)
            if not data:
                return
            (b if s is a else a).sendall(data)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        line = self.rfile.readline(65537).decode("latin-1").strip()
        headers = []
        while True:
            h = self.rfile.readline(65537)
            if h in (b"\r\n", b"\n", b""):
                break
            headers.append(h)
        parts = line.split()
        if len(parts) != 3:
            self.wfile.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        method, target, version = parts
        if method.upper() == "CONNECT":
            host, _, port_s = target.rpartition(":")
            host = host.strip("[]")
        else:
            url = urlsplit(target)
            host, port_s = url.hostname or "", str(url.port or 80)
        try:
            port = int(port_s)
        except ValueError:
            port = 0
        allowed = bool(host) and port > 0 and host_allowed(host, self.server.allowed_hosts)
        self.server.on_connection(host, port, allowed)
        if not allowed:
            msg = f"goldpath egress proxy: {host}:{port} is not allowed by policy\n".encode()
            self.wfile.write(
                b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: "
                + str(len(msg)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + msg
            )
            return
        try:
            upstream = socket.create_connection((host, port), timeout=10)
        except OSError as exc:
            self.wfile.write(f"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nX-Error: {exc}\r\n\r\n".encode())
            return
        with upstream:
            if method.upper() == "CONNECT":
                self.wfile.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            else:
                url = urlsplit(target)
                path = (url.path or "/") + (f"?{url.query}" if url.query else "")
                upstream.sendall(f"{method} {path} {version}\r\n".encode("latin-1") + b"".join(headers) + b"\r\n")
            self.wfile.flush()
            _pipe(self.connection, upstream)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allowed_hosts: list[str]
    on_connection: OnConnection


class EgressProxy:
    """Threaded allow-list proxy listening on `socket_path`; start()/stop()."""

    def __init__(
        self, socket_path: str | os.PathLike[str], allowed_hosts: list[str], on_connection: OnConnection | None = None
    ) -> None:
        self.socket_path = str(socket_path)
        self.allowed_hosts = list(allowed_hosts)
        self.on_connection: OnConnection = on_connection or (lambda host, port, allowed: None)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        server = _Server(self.socket_path, _Handler)
        server.allowed_hosts = self.allowed_hosts
        server.on_connection = self.on_connection
        os.chmod(self.socket_path, 0o666)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="egress-proxy", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
