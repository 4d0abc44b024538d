"""Carry a decided egress request upstream: connect to checked addresses, tunnel a CONNECT, forward plain HTTP.

The decision (policy, address rule) is catalog.runners.egress's; everything here only moves bytes to what was
decided: the Host header is rewritten to it, hop-by-hop headers are dropped and the response is re-framed.
"""

from __future__ import annotations

import contextlib
import selectors
import socket

from . import http1
from .http1 import BadMessage, Head, Reader

IDLE_TIMEOUT = 600.0  # a model call may think for minutes before its first byte
CONNECT_TIMEOUT = 10.0


class Refused(Exception):
    """An egress request that is answered here (status, fixed text) and goes no further."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def authority(host: str, port: int, default: int) -> str:
    """The Host header for a decided destination (IPv6 in brackets, the default port left out)."""
    text = f"[{host}]" if ":" in host else host
    return text if port == default else f"{text}:{port}"


def connect(host: str, port: int, addresses: list[str]) -> socket.socket:
    """A connection to the first of the checked addresses that answers (never a fresh resolution)."""
    problem = "did not resolve"
    for address in addresses:
        try:
            upstream = socket.create_connection((address, port), timeout=CONNECT_TIMEOUT)
        except TimeoutError:
            problem = "timed out"
        except ConnectionRefusedError:
            problem = "refused the connection"
        except OSError:
            problem = "is unreachable"
        else:
            upstream.settimeout(IDLE_TIMEOUT)
            return upstream
    raise Refused(502, f"{host}:{port} {problem}")


# -- CONNECT ---------------------------------------------------------------------------------


def tunnel(conn: socket.socket, reader: Reader, upstream: socket.socket) -> None:
    """Bytes both ways until both sides are done; a half-close is passed on, not treated as the end."""
    conn.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
    early = reader.drain()
    if early:
        upstream.sendall(early)
    peer = {conn: upstream, upstream: conn}
    with selectors.DefaultSelector() as selector:
        for sock in peer:
            selector.register(sock, selectors.EVENT_READ)
        while peer:
            ready = selector.select(IDLE_TIMEOUT)
            if not ready:
                return
            for key, _ in ready:
                src = key.fileobj
                assert isinstance(src, socket.socket)
                data = src.recv(http1.CHUNK)
                if data:
                    peer[src].sendall(data)
                    continue
                with contextlib.suppress(OSError):
                    peer[src].shutdown(socket.SHUT_WR)
                selector.unregister(src)
                del peer[src]


# -- plain HTTP ------------------------------------------------------------------------------


def forward(
    conn: socket.socket,
    reader: Reader,
    upstream: socket.socket,
    head: Head,
    request: tuple,
    default_port: int = 80,
) -> bool:
    """Send one request upstream (Host rewritten to what was decided), relay its response."""
    method, host, port, path, version = request
    try:
        framing, length = http1.request_framing(head, version)
    except BadMessage as exc:
        conn.sendall(http1.reply(exc.status, exc.reason))
        return False
    dropped = http1.HOP_BY_HOP | set(head.tokens("connection"))
    headers = [("Host", authority(host, port, default_port))]
    headers += [(k, v) for k, v in head.headers if k.lower() not in dropped]
    headers.append(("Connection", "close"))
    if framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
    elif framing == "length":
        headers.append(("Content-Length", str(length)))
    try:
        upstream.sendall(http1.serialize(f"{method} {path} {version}", headers))
    except OSError:
        conn.sendall(http1.reply(502, f"{host}:{port} closed the connection"))
        return False
    if "100-continue" in head.tokens("expect") and (framing == "chunked" or length > 0):
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")  # we answer it: Expect is not forwarded
    try:
        http1.relay_body(reader, upstream, framing, length)
    except BadMessage as exc:
        conn.sendall(http1.reply(exc.status, exc.reason))
        return False
    except (BrokenPipeError, ConnectionResetError):  # the upstream answered early (e.g. 413) and hung up
        relay_response(conn, upstream, method)
        return False
    closing = version != "HTTP/1.1" or "close" in head.tokens("connection") + head.tokens("proxy-connection")
    return relay_response(conn, upstream, method, closing=closing)


def relay_response(conn: socket.socket, upstream: socket.socket, method: str, closing: bool = True) -> bool:
    """Interim 1xx heads pass through; the final head is re-serialised with our framing headers.
    True if the client connection may carry another request."""
    reader = Reader(upstream)
    while True:
        try:
            head = http1.read_head(reader)
            if head is None:
                raise BadMessage("empty response")
            parts = head.first.split(" ", 2)
            code = parts[1] if len(parts) > 1 else ""
            if not parts[0].startswith("HTTP/1.") or len(code) != 3 or not (code.isascii() and code.isdigit()):
                raise BadMessage("malformed status line")
        except (BadMessage, OSError) as exc:  # nothing has reached the client yet: it gets a proper answer
            problem = "a malformed response" if isinstance(exc, BadMessage) else "no response"
            conn.sendall(http1.reply(502, f"the upstream answered with {problem}"))
            return False
        status = int(parts[1])
        if 100 <= status < 200 and status != 101:
            conn.sendall(http1.serialize(head.first, head.headers))
            continue
        break
    framing, length = http1.response_framing(status, head, method)
    dropped = {"connection", "keep-alive", "proxy-connection", "upgrade", *head.tokens("connection")}
    if framing in ("chunked", "close"):
        dropped.add("content-length")  # a length beside Transfer-Encoding, or one we could not read
    headers = [(k, v) for k, v in head.headers if k.lower() not in dropped]
    keep = framing != "close" and status != 101 and not closing
    if not keep:
        headers.append(("Connection", "close"))
    reason = parts[2] if len(parts) > 2 else ""
    conn.sendall(http1.serialize(f"HTTP/1.1 {status} {reason}".rstrip(), headers))
    http1.relay_body(reader, conn, "close" if status == 101 else framing, length)
    return keep
