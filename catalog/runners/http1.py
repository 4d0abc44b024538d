"""Just enough HTTP/1.1 for the egress proxy: heads parsed strictly, bodies relayed by their framing.

There is no buffered file object between the socket and the parser: a Reader keeps its own buffer,
so bytes that arrive in the same read as a head (a request body, the next pipelined request, the
first TLS bytes after CONNECT) are read from that buffer like everything else and never stranded.

Parsing is strict where a lenient parser and the upstream's could disagree about where a message
ends (request smuggling): no folded headers, no whitespace before the colon, one Content-Length
value, no Transfer-Encoding other than `chunked`, never both. Heads are re-serialised, never copied.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

MAX_HEAD = 64 * 1024
MAX_HEADERS = 200
CHUNK = 64 * 1024
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HEX = frozenset(b"0123456789abcdefABCDEF")
# never forwarded as received: they describe one hop, or the proxy sets them itself
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
        "transfer-encoding",
        "content-length",
        "expect",
        "host",
    }
)
REASONS = {
    100: "Continue",
    400: "Bad Request",
    403: "Forbidden",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class BadMessage(Exception):
    """A message the proxy will not pass on; `status` is what the sender of a request is told."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


def is_token(text: str) -> bool:
    return bool(_TOKEN.match(text))


class Reader:
    """Reads lines and bodies from a socket through one buffer the caller can drain (see module doc)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def read_line(self, limit: int) -> bytes | None:
        """One line without CRLF (or LF); None on EOF before any byte."""
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                if i > limit:
                    raise BadMessage("line too long", 431)
                line = bytes(self.buf[:i])
                del self.buf[: i + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self.buf) > limit:
                raise BadMessage("line too long", 431)
            start = len(self.buf)
            data = self.sock.recv(CHUNK)
            if not data:
                if self.buf:
                    raise BadMessage("connection closed in the middle of a line")
                return None
            self.buf += data

    def read_some(self, n: int) -> bytes:
        """Up to n bytes: the buffer first, then the socket; b"" at EOF."""
        if not self.buf:
            return self.sock.recv(min(n, CHUNK))
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def drain(self) -> bytes:
        """Everything buffered (e.g. tunnel bytes that came with the CONNECT head)."""
        data = bytes(self.buf)
        self.buf.clear()
        return data


@dataclass
class Head:
    first: str  # request line or status line
    headers: list[tuple[str, str]]

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]

    def tokens(self, name: str) -> list[str]:
        return [t.strip().lower() for v in self.values(name) for t in v.split(",") if t.strip()]


def _text(line: bytes) -> str:
    text = line.decode("latin-1")
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in text):
        raise BadMessage("control character in the head")
    return text


def read_head(reader: Reader) -> Head | None:
    """A start line and its headers; None if the peer closed before sending anything."""
    first = reader.read_line(MAX_HEAD)
    for _ in range(4):  # tolerate stray CRLFs between pipelined messages
        if first != b"":
            break
        first = reader.read_line(MAX_HEAD)
    if first is None:
        return None
    size = len(first)
    headers: list[tuple[str, str]] = []
    while True:
        line = reader.read_line(MAX_HEAD)
        if line is None:
            raise BadMessage("connection closed inside the head")
        size += len(line) + 2
        if size > MAX_HEAD or len(headers) >= MAX_HEADERS:
            raise BadMessage("head too large", 431)
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            raise BadMessage("folded header lines are not accepted")
        name, sep, value = _text(line).partition(":")
        if not sep or not is_token(name):
            raise BadMessage("malformed header line")
        headers.append((name, value.strip(" \t")))
    return Head(_text(first), headers)


def _content_length(values: list[str]) -> int:
    parts = {p.strip() for v in values for p in v.split(",")}
    if len(parts) != 1:
        raise BadMessage("conflicting Content-Length values")
    text = parts.pop()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise BadMessage("bad Content-Length")
    return int(text)


def request_framing(head: Head, version: str) -> tuple[str, int]:
    """("none" | "length" | "chunked", length) of a request body (RFC 9112 section 6)."""
    if head.values("transfer-encoding"):
        if head.values("content-length"):
            raise BadMessage("both Transfer-Encoding and Content-Length")
        if head.tokens("transfer-encoding") != ["chunked"] or version == "HTTP/1.0":
            raise BadMessage("only the chunked transfer coding is supported", 501)
        return "chunked", 0
    if head.values("content-length"):
        return "length", _content_length(head.values("content-length"))
    return "none", 0


def response_framing(status: int, head: Head, method: str) -> tuple[str, int]:
    """How a response body ends: "none", "length", "chunked", or "close" (read until EOF)."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return "none", 0
    if head.values("transfer-encoding"):
        codings = head.tokens("transfer-encoding")
        return ("chunked", 0) if codings and codings[-1] == "chunked" else ("close", 0)
    if head.values("content-length"):
        try:
            return "length", _content_length(head.values("content-length"))
        except BadMessage:
            return "close", 0
    return "close", 0


def serialize(first: str, headers: list[tuple[str, str]]) -> bytes:
    return (first + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("latin-1")


def _relay_length(reader: Reader, dst: socket.socket, n: int) -> None:
    while n > 0:
        data = reader.read_some(min(n, CHUNK))
        if not data:
            raise BadMessage("the body ended early")
        dst.sendall(data)
        n -= len(data)


def _relay_chunked(reader: Reader, dst: socket.socket) -> None:
    """Re-frame each chunk (extensions dropped); trailers are read and dropped."""
    while True:
        line = reader.read_line(1024)
        if line is None:
            raise BadMessage("the body ended early")
        size_text = line.split(b";", 1)[0].strip(b" \t")
        if not size_text or len(size_text) > 15 or not set(size_text) <= _HEX:
            raise BadMessage("bad chunk size")
        size = int(size_text, 16)
        if size == 0:
            break
        dst.sendall(b"%x\r\n" % size)
        _relay_length(reader, dst, size)
        if reader.read_line(2) != b"":
            raise BadMessage("chunk data not followed by CRLF")
        dst.sendall(b"\r\n")
    total = 0
    while line := reader.read_line(MAX_HEAD):
        total += len(line)
        if total > MAX_HEAD:
            raise BadMessage("trailers too large", 431)
    if line is None:
        raise BadMessage("the body ended early")
    dst.sendall(b"0\r\n\r\n")


def relay_body(reader: Reader, dst: socket.socket, framing: str, length: int) -> None:
    """Copy one body from reader to dst by its framing; BadMessage if it is malformed or cut short."""
    if framing == "length":
        _relay_length(reader, dst, length)
    elif framing == "chunked":
        _relay_chunked(reader, dst)
    elif framing == "close":
        while data := reader.read_some(CHUNK):
            dst.sendall(data)


def reply(status: int, message: str) -> bytes:
    """A complete plain-text answer from the proxy itself; the connection closes after it."""
    body = f"goldpath egress proxy: {message}\n".encode()
    head = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), ("Connection", "close")]
    return serialize(f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}", head) + body
