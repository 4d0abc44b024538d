"""Forwarding an admitted call to its upstream and relaying the answer chunk by chunk while metering it.

- Upstream: UPSTREAM_ANTHROPIC for Messages, UPSTREAM_OPENAI for Responses / Chat Completions (base URL +
  the same `/v1/...` path and query); `demo` answers in-process from `catalog.gateway.scripted`.
- Request: the team's vendor key (`x-api-key` or `Authorization: Bearer`), only the headers admission kept
  (never the CLI's credential, cookies or hop-by-hop headers), `Accept-Encoding: identity` so usage can be
  read. A streamed Chat Completions request gets `stream_options.include_usage` when it lacks it; the extra
  usage chunk is read and not passed on.
- Connections: http.client per worker thread, kept alive and reused (a stale one is retried once on a fresh
  connection); TLS with certificate verification; 10 s to connect, READ_TIMEOUT_S between bytes.
- Failures (unreachable, 5xx, a stream broken off) answer 502 in the vendor's format, recorded.
- The upstream's 401/403 (the team's vendor key refused) is answered with the gateway's own message in the
  vendor's format, recorded: a vendor's own body may quote part of the key.
- A stream that ends before its closing usage is charged at least the text it relayed (`Meter.settle`).
"""

from __future__ import annotations

import http.client
import json
import logging
import ssl
import threading
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from django.http import HttpResponse, StreamingHttpResponse

from . import recorder
from .admission import Call, gateway_failed
from .errors import ANTHROPIC, error_body, error_response
from .metering import Meter, Usage, record_call
from .protocols import OPENAI_CHAT, OPENAI_RESPONSES, PATH

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 600
READ_SIZE = 64 * 1024
_STALE = (http.client.RemoteDisconnected, http.client.CannotSendRequest, ConnectionResetError, BrokenPipeError)
# upstream response headers passed back to the CLI
_PASSED_BACK = ("request-id", "retry-after", "x-should-retry", "openai-processing-ms")


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    prefix: str

    @property
    def label(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


@lru_cache(maxsize=16)
def target(base_url: str) -> Target:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the upstream {base_url!r} is not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Target(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()  # verifies certificates and host names


class _HTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()  # within the connect timeout
        self.sock.settimeout(READ_TIMEOUT_S)


class _HTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()  # TCP and TLS handshake within the connect timeout
        self.sock.settimeout(READ_TIMEOUT_S)


_local = threading.local()


def _pool() -> dict[Target, http.client.HTTPConnection]:
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    return pool


def _connection(t: Target) -> http.client.HTTPConnection:
    if t.scheme == "https":
        return _HTTPSConnection(t.host, t.port, timeout=CONNECT_TIMEOUT_S, context=_tls())
    return _HTTPConnection(t.host, t.port, timeout=CONNECT_TIMEOUT_S)


def _send(t: Target, path: str, body: bytes, headers: dict[str, str]):
    conn = _pool().pop(t, None)
    if conn is not None:  # a kept-alive connection the upstream may have closed meanwhile: one retry
        try:
            conn.request("POST", path, body=body, headers=headers)
            return conn, conn.getresponse()
        except _STALE:
            conn.close()
    conn = _connection(t)
    try:
        conn.request("POST", path, body=body, headers=headers)
        return conn, conn.getresponse()
    except BaseException:
        conn.close()
        raise


def _release(t: Target, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
    if resp.will_close or not resp.isclosed():
        conn.close()
        return
    old = _pool().pop(t, None)
    if old is not None:
        old.close()
    _pool()[t] = conn


def upstream_body(call: Call) -> tuple[bytes, bool]:
    """The body to send, and whether the usage chunk the gateway asked for must be kept from the client."""
    payload = call.payload
    if call.protocol == OPENAI_CHAT and call.stream:
        options = payload.get("stream_options")
        if not (isinstance(options, dict) and options.get("include_usage") is True):
            options = {**(options if isinstance(options, dict) else {}), "include_usage": True}
            return json.dumps({**payload, "stream_options": options}).encode(), True
    return (call.body if call.forward_body is None else call.forward_body), False


def _request_headers(call: Call, t: Target, length: int) -> dict[str, str]:
    headers = dict(call.headers)
    headers.setdefault("content-type", "application/json")
    default_port = 443 if t.scheme == "https" else 80
    headers["Host"] = t.host if t.port == default_port else f"{t.host}:{t.port}"
    headers["Accept-Encoding"] = "identity"
    headers["Content-Length"] = str(length)
    if call.flavor == ANTHROPIC:
        headers["x-api-key"] = call.vendor_key
    else:
        headers["Authorization"] = f"Bearer {call.vendor_key}"
    return headers


def record(call: Call, upstream: str, status: int, usage: Usage, response_body: bytes, *, streamed: bool) -> None:
    if not call.metered:
        return
    try:
        record_call(
            call.state,
            protocol=call.protocol,
            model=call.model,
            streamed=streamed,
            upstream=upstream,
            status_code=status,
            usage=usage,
            request_body=call.body,
            response_body=response_body,
            started=call.started,
            reservation=call.reservation,
        )
    except Exception:  # noqa: BLE001 - the answer was sent; a lost row is logged, never a broken stream
        logger.exception("gateway: could not record a model call of %s", call.state.ref)


class RecordedResponse(HttpResponse):
    """A whole (non-streamed) answer whose call is recorded after its last byte went out: the WSGI server closes
    the response once it is sent, before Django's request_finished closes the database connection."""

    def __init__(self, *args, on_close, **kwargs):
        super().__init__(*args, **kwargs)
        self._on_close = on_close

    def close(self) -> None:
        on_close, self._on_close = self._on_close, None
        try:
            if on_close is not None:
                on_close()
        finally:
            super().close()


def _failure(call: Call, upstream: str, message: str) -> HttpResponse:
    logger.warning("gateway: %s: %s", call.state.ref, message)
    body = error_body(call.flavor, 502, "upstream_error", message)
    record(call, upstream, 502, Usage(), body, streamed=False)
    return error_response(call.flavor, 502, "upstream_error", message, body=body)


def _key_refused(call: Call, t: Target, conn, resp) -> HttpResponse:
    """The vendor refused the team's key: its own body is not passed on (OpenAI's quotes the key's last
    characters); the CLI gets the gateway's message, in the vendor's format, and the call is recorded."""
    conn.close()  # the body is not read: not worth keeping the connection for
    status = resp.status
    message = (
        f"the vendor refused the team's API key for {call.state.tool.slug} (HTTP {status}); ask a platform engineer "
        "to check it on /vendor-keys/"
    )
    logger.warning("gateway: %s: %s", call.state.ref, message)
    body = error_body(call.flavor, status, "vendor_key_refused", message)
    record(call, t.label, status, Usage(), body, streamed=False)
    response = error_response(call.flavor, status, "vendor_key_refused", message, body=body)
    response["x-goldpath-upstream"] = t.label
    return response


def _upstream_message(data: bytes) -> str:
    try:
        error = json.loads(data).get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    return str(message or data[:200].decode(errors="replace") or "no body")[:300]


def _stream_error(flavor: str, protocol: str, message: str) -> bytes:
    """The vendor's in-stream error event, for a stream the upstream broke off after it started."""
    if flavor == ANTHROPIC:
        data = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + json.dumps(data).encode() + b"\n\n"
    if protocol == OPENAI_RESPONSES:
        data = {"type": "error", "code": "upstream_error", "message": message, "param": None}
        return b"event: error\ndata: " + json.dumps(data).encode() + b"\n\n"
    data = {"error": {"message": message, "type": "server_error", "param": None, "code": "upstream_error"}}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def forward(call: Call) -> HttpResponse | StreamingHttpResponse:
    try:
        t = target(call.upstream)
    except ValueError as exc:
        return _failure(call, call.upstream[:200], str(exc))
    body, strip = upstream_body(call)
    path = t.prefix + PATH[call.protocol] + (f"?{call.query}" if call.query else "")
    try:
        conn, resp = _send(t, path, body, _request_headers(call, t, len(body)))
    except (OSError, http.client.HTTPException) as exc:
        return _failure(call, t.label, f"the upstream {t.label} is unreachable ({type(exc).__name__}: {exc})")
    if resp.status >= 500:
        try:
            detail = _upstream_message(resp.read(READ_SIZE))
        except (OSError, http.client.HTTPException):
            detail = "no body"
        conn.close()
        return _failure(call, t.label, f"the upstream {t.label} answered {resp.status}: {detail}")
    if resp.status in (401, 403):
        return _key_refused(call, t, conn, resp)
    content_type = resp.getheader("Content-Type") or "application/json"
    meter = Meter(call.protocol, strip_usage_chunk=strip)
    if content_type.startswith("text/event-stream"):
        relay = Started(_relay(call, t, conn, resp, meter), on_unstarted=lambda: _unsent(call, t, conn, resp))
        response: HttpResponse | StreamingHttpResponse = StreamingHttpResponse(
            relay, status=resp.status, content_type=content_type
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
    else:
        try:
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            return _failure(call, t.label, f"the upstream {t.label} broke off its answer ({type(exc).__name__})")
        _release(t, conn, resp)
        meter.read_json(data)
        response = RecordedResponse(
            data,
            status=resp.status,
            content_type=content_type,
            on_close=lambda: record(call, t.label, resp.status, meter.usage, data, streamed=False),
        )
    for name in _PASSED_BACK:
        value = resp.getheader(name)
        if value:
            response[name] = value
    if resp.getheader("x-request-id"):
        response["x-upstream-request-id"] = resp.getheader("x-request-id")
    response["x-goldpath-upstream"] = t.label
    return response


class Started:
    """A streamed body whose generator's cleanup also runs when the server closes it before the first chunk
    (a generator never started skips its `finally`): the upstream connection is closed and the call recorded."""

    def __init__(self, chunks, *, on_unstarted):
        self._chunks = chunks
        self._on_unstarted = on_unstarted
        self._started = False

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        self._started = True
        return next(self._chunks)

    def close(self) -> None:
        self._chunks.close()
        if not self._started:
            self._started = True
            self._on_unstarted()


def _unsent(call: Call, t: Target, conn, resp) -> None:
    conn.close()
    record(call, t.label, resp.status, Usage(), b"", streamed=True)


def metered(chunks, meter: Meter, sent: list[bytes]):
    """Pass SSE chunks through the meter (which reads usage and may keep back a usage chunk the client did not ask
    for), keeping what went out for the transcript."""
    for chunk in chunks:
        out = meter.feed(chunk)
        if out:
            sent.append(out)
            yield out
    rest = meter.flush()
    if rest:
        sent.append(rest)
        yield rest


def _relay(call: Call, t: Target, conn, resp, meter: Meter):
    """Pass the upstream's SSE events on as they arrive; after the last byte (or a disconnect) record the call."""
    sent: list[bytes] = []
    status = resp.status
    complete = False
    try:
        yield from metered(iter(lambda: resp.read1(READ_SIZE), b""), meter, sent)
        complete = True
    except (OSError, http.client.HTTPException) as exc:
        status = 502
        message = f"the upstream {t.label} broke off the stream ({type(exc).__name__})"
        logger.warning("gateway: %s: %s", call.state.ref, message)
        tail = _stream_error(call.flavor, call.protocol, message)
        sent.append(tail)
        yield tail
    except Exception as exc:  # noqa: BLE001 - a gateway bug mid-stream: the run must not succeed
        status = 500
        tail = _stream_error(call.flavor, call.protocol, gateway_failed(call.state, call.protocol, exc).message)
        sent.append(tail)
        yield tail
    finally:
        if complete:
            _release(t, conn, resp)
        else:
            conn.close()
        relayed = b"".join(sent)
        usage = meter.settle(meter.usage, relayed, call.state.ref)
        recorder.submit(lambda: record(call, t.label, status, usage, relayed, streamed=True))
