"""Egress proxy on a Unix socket: the only way out of a sandbox whose policy names hosts.

Speaks HTTP CONNECT (for HTTPS) and absolute-URI plain HTTP. Allow-list grammar and address rules:
catalog.runners.egress_policy; moving the bytes of a decided request: catalog.runners.egress_relay.
Every plain-HTTP request is parsed and decided on its own, also the second and later ones on a kept-alive
connection, and each goes upstream on a fresh connection (`Connection: close`), so no byte ever reaches a
host that was not decided for it; a CONNECT tunnel is one destination, decided once. Every decision is
reported through `on_connection(host, port, allowed)`; refusals get a 403 and end the connection.

The proxy connects to the addresses it checked (never resolves twice), answers errors with fixed
texts (no exception text), and stops without waiting for a poll interval: the accept loop sleeps in
a selector that stop() wakes through a pipe, and live connections are shut down.


The model gateway route (catalog.runners.gateway_relay): `/v1/...` requests for the proxy's own address go to
the web tier's gateway and nowhere else.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable

from . import egress_relay as relay
from . import http1
from .egress_policy import (  # noqa: F401 - host_allowed, resolve_host: re-exported for the runner's callers
    BadAddress,
    best_match,
    host_allowed,
    parse_patterns,
    resolve_host,
    split_authority,
)
from .egress_relay import CONNECT_TIMEOUT, IDLE_TIMEOUT, Refused
from .gateway_relay import GatewayRoute
from .http1 import BadMessage, Head, Reader

OnConnection = Callable[[str, int, bool], None]
Resolve = Callable[[str, int], list[str]]
STOP_GRACE = 1.0


def _absolute_target(target: str) -> tuple[str, int, str]:
    """(host, port, origin-form path) of an absolute http:// request target."""
    if target[:7].lower() != "http://":
        raise BadAddress("a proxy request needs an absolute http:// URL (HTTPS goes through CONNECT)")
    rest = target[7:]
    end = min([i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0] or [len(rest)])
    authority, path = rest[:end], rest[end:].split("#", 1)[0]
    if not authority or "@" in authority:
        raise BadAddress("the URL needs a host and no user name")
    host, port = split_authority(authority)
    return host, port or 80, path if path.startswith("/") else "/" + path


class EgressProxy:
    """Threaded allow-list proxy listening on `socket_path` (or on a listening socket it is given: the sandbox's
    own loopback port, made in its network namespace); start()/stop()."""

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        allowed_hosts: list[str],
        on_connection: OnConnection | None = None,
        *,
        resolve: Resolve | None = None,
        max_connections: int = 256,
        gateway: GatewayRoute | None = None,
    ) -> None:
        self.socket_path = str(socket_path)
        self.gateway = gateway
        self.allowed_hosts = list(allowed_hosts)
        self.patterns = parse_patterns(self.allowed_hosts)  # a malformed entry allows nothing
        self.on_connection: OnConnection = on_connection or (lambda host, port, allowed: None)
        self.resolve = resolve or resolve_host
        self.max_connections = max_connections
        self._listener: socket.socket | None = None
        self._wake: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._handlers: set[threading.Thread] = set()
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, listener: socket.socket | None = None) -> None:
        if listener is None:
            if os.path.exists(self.socket_path):
                os.unlink(self.socket_path)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(self.socket_path)
            os.chmod(self.socket_path, 0o666)
            listener.listen(128)
        listener.setblocking(False)
        self._listener, self._wake, self._stopping = listener, os.pipe(), False
        self._thread = threading.Thread(target=self._accept_loop, name="egress-proxy", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Wake the accept loop, shut every live connection, wait briefly for handlers to report."""
        self._stopping = True
        if self._thread is not None and self._wake is not None:
            os.write(self._wake[1], b"x")
            self._thread.join()
        with self._lock:
            live, handlers = list(self._live), list(self._handlers)
        for sock in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + STOP_GRACE
        for thread in handlers:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._listener is not None:
            self._listener.close()
        for fd in self._wake or ():
            os.close(fd)
        self._listener = self._wake = self._thread = None
        if self.socket_path and os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    def _accept_loop(self) -> None:
        assert self._listener is not None and self._wake is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake[0], selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj == self._wake[0]:
                        return
                    try:
                        conn, _ = self._listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:  # out of descriptors: let the peer retry, do not spin
                        time.sleep(0.01)
                        continue
                    self._start_handler(conn)

    def _start_handler(self, conn: socket.socket) -> None:
        with self._lock:
            full = len(self._live) >= self.max_connections
            if not full:
                thread = threading.Thread(target=self._handle, args=(conn,), name="egress-conn", daemon=True)
                self._live.add(conn)
                self._handlers.add(thread)
        if full:
            with contextlib.suppress(OSError):
                conn.setblocking(False)
                conn.send(http1.reply(503, "too many connections"))
            conn.close()
            return
        thread.start()

    def _track(self, sock: socket.socket, live: bool) -> None:
        with self._lock:
            (self._live.add if live else self._live.discard)(sock)

    # -- one client connection ---------------------------------------------------------------
    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(IDLE_TIMEOUT)
            reader = Reader(conn)
            while not self._stopping and self._serve_one(conn, reader):
                pass
        except (OSError, BadMessage):
            pass
        finally:
            with self._lock:
                self._live.discard(conn)
                self._handlers.discard(threading.current_thread())
            conn.close()

    def _serve_one(self, conn: socket.socket, reader: Reader) -> bool:
        """One request (or one tunnel); True if the connection may carry another request."""
        try:
            head = http1.read_head(reader)
            if head is None:
                return False
            method, target, version = self._request_line(head)
            gateway_path = self.gateway.target(method, target) if self.gateway is not None else None
            if gateway_path is not None:
                return self._serve_gateway(conn, reader, head, method, gateway_path, version)
            if method == "CONNECT":
                host, port = split_authority(target, port_required=True)
                path = ""
            else:
                host, port, path = _absolute_target(target)
        except BadMessage as exc:
            conn.sendall(http1.reply(exc.status, exc.reason))
            return False
        except BadAddress as exc:
            conn.sendall(http1.reply(400, f"bad request target: {exc}"))
            return False
        try:
            addresses = self._decide(host, port)
            upstream = relay.connect(host, port, addresses)
        except Refused as exc:
            conn.sendall(http1.reply(exc.status, exc.message))
            return False
        self._track(upstream, True)
        try:
            if method == "CONNECT":
                relay.tunnel(conn, reader, upstream)
                return False
            return relay.forward(conn, reader, upstream, head, (method, host, port, path, version))
        finally:
            self._track(upstream, False)
            upstream.close()

    def _serve_gateway(self, conn: socket.socket, reader: Reader, head: Head, method: str, path: str, version: str):
        """Relay one model call to the web tier's gateway (the only destination of this route)."""
        gateway = self.gateway
        assert gateway is not None
        if not gateway.path_allowed(path):
            conn.sendall(http1.reply(404, "only the model gateway's /v1/ paths are served here"))
            return False
        try:
            upstream = gateway.connect(CONNECT_TIMEOUT, IDLE_TIMEOUT)
        except (OSError, ssl.SSLError):
            conn.sendall(http1.reply(502, "the model gateway is unreachable"))
            return False
        self._track(upstream, True)
        try:
            request = (method, gateway.host, gateway.port, gateway.upstream_path(path), version)
            return relay.forward(conn, reader, upstream, gateway.clean(head), request, default_port=gateway.web_port)
        finally:
            self._track(upstream, False)
            upstream.close()

    @staticmethod
    def _request_line(head: Head) -> tuple[str, str, str]:
        parts = head.first.split(" ")
        if len(parts) != 3 or not http1.is_token(parts[0]) or not parts[1]:
            raise BadMessage("malformed request line")
        if parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
            raise BadMessage("only HTTP/1.0 and HTTP/1.1 are spoken here", 505)
        return parts[0], parts[1], parts[2]

    def _decide(self, host: str, port: int) -> list[str]:
        """Policy, then the address rule; reports the outcome; the addresses to connect to."""
        pattern = best_match(host, port, self.patterns)
        if pattern is None:
            self.on_connection(host, port, False)
            raise Refused(403, f"{host}:{port} is not allowed by policy")
        try:
            resolved = self.resolve(host, port)
        except OSError:
            self.on_connection(host, port, True)
            raise Refused(502, f"{host} did not resolve") from None
        addresses = []
        for text in resolved:
            try:
                addr = ipaddress.ip_address(text)
            except ValueError:
                continue
            if pattern.permits_address(addr):
                addresses.append(text)
        if resolved and not addresses:
            self.on_connection(host, port, False)
            raise Refused(
                403, f"{host} resolves to a non-public address; only a pattern naming it exactly may reach it"
            )
        self.on_connection(host, port, True)
        if self._stopping:
            raise Refused(503, "the proxy is stopping")
        return addresses
