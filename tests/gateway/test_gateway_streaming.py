"""Streams relayed through the web server `make run` uses (waitress): events reach the client as the upstream
sends them, not when the answer ends; a stream the upstream breaks off ends with the vendor's error event."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from catalog.models import ModelCall
from tests.gateway.conftest import make_run

START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [],
        "usage": {
            "input_tokens": 1200,
            "cache_read_input_tokens": 800,
            "cache_creation_input_tokens": 100,
            "output_tokens": 1,
        },
    },
}
REST = [
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 42}},
    {"type": "message_stop"},
]
PAUSE_S = 0.8


def event(data: dict) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


class SlowUpstream(BaseHTTPRequestHandler):
    """message_start at once, the rest after a pause (or, for `broken`, nothing: the connection drops)."""

    protocol_version = "HTTP/1.1"
    broken = False

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        first = event(START)
        self.wfile.write(b"%x\r\n%s\r\n" % (len(first), first))
        self.wfile.flush()
        time.sleep(PAUSE_S)
        if self.server.broken:
            self.connection.shutdown(socket.SHUT_RDWR)  # mid-chunk-stream: the gateway sees the connection drop
            self.close_connection = True
            return
        for data in REST:
            chunk = event(data)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


@pytest.fixture
def slow_upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowUpstream)
    server.daemon_threads = True
    server.broken = False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def stream_through(port: int, token: str) -> tuple[int, list[tuple[float, bytes]]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True, "messages": []})
    t0 = time.perf_counter()
    conn.request(
        "POST", "/gateway/v1/messages", body=body, headers={"x-api-key": token, "anthropic-version": "2023-06-01"}
    )
    response = conn.getresponse()
    arrivals = []
    while chunk := response.read1(65536):
        arrivals.append((time.perf_counter() - t0, chunk))
    conn.close()
    return response.status, arrivals


def test_events_reach_the_client_as_they_come(settings, people, teams, slow_upstream, waitress_portal):
    settings.GOLDPATH = {**settings.GOLDPATH, "UPSTREAM_ANTHROPIC": f"http://127.0.0.1:{slow_upstream.server_port}"}
    gw = make_run(people, teams)
    status, arrivals = stream_through(waitress_portal, gw.token)
    assert status == 200
    first_at, first = arrivals[0]
    assert b"message_start" in first
    assert first_at < PAUSE_S * 0.75, f"the first event waited for the whole answer ({first_at:.2f}s)"
    assert arrivals[-1][0] >= PAUSE_S
    received = b"".join(chunk for _, chunk in arrivals)
    assert received.count(b"\n\n") == 1 + len(REST)

    call = ModelCall.objects.get(run=gw.run)
    assert (call.input_tokens, call.cache_read_tokens, call.cache_write_tokens, call.output_tokens) == (
        1200,
        800,
        100,
        42,
    )
    # claude-sonnet-4-5: $3 in, $15 out, $0.30 cache read, $3.75 cache write per million tokens
    assert str(call.cost_usd) == "0.004845"  # 3600 + 630 + 240 + 375 micro-dollars
    assert call.latency_ms >= PAUSE_S * 1000 * 0.9
    assert bytes(call.response_body) == received


def test_a_stream_broken_off_upstream_ends_with_an_error_event(settings, people, teams, slow_upstream, waitress_portal):
    slow_upstream.broken = True
    settings.GOLDPATH = {**settings.GOLDPATH, "UPSTREAM_ANTHROPIC": f"http://127.0.0.1:{slow_upstream.server_port}"}
    gw = make_run(people, teams)
    status, arrivals = stream_through(waitress_portal, gw.token)
    received = b"".join(chunk for _, chunk in arrivals)
    assert status == 200  # the headers had gone out
    assert b"message_start" in received and b"event: error" in received and b"broke off the stream" in received
    call = ModelCall.objects.get(run=gw.run)
    assert call.status_code == 502 and call.input_tokens == 1200 and bytes(call.response_body) == received


def test_codex_websocket_probe_through_waitress_is_426(waitress_portal):
    conn = http.client.HTTPConnection("127.0.0.1", waitress_portal, timeout=10)
    conn.request(
        "GET",
        "/gateway/v1/responses",
        headers={
            "Authorization": "Bearer gpg_x",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
        },
    )
    response = conn.getresponse()
    assert response.status == 426
    assert json.loads(response.read())["error"]["code"] == "websocket_not_supported"
    conn.close()


def test_a_streamed_call_is_recorded_off_the_answers_path(settings, people, teams, slow_upstream, waitress_portal):
    """As `make run` serves it: the record is written by the recorder thread after the answer has gone out."""
    from catalog.gateway import recorder

    settings.GOLDPATH = {
        **settings.GOLDPATH,
        "UPSTREAM_ANTHROPIC": f"http://127.0.0.1:{slow_upstream.server_port}",
        "GATEWAY_RECORD_IN_BACKGROUND": True,
    }
    gw = make_run(people, teams)
    status, arrivals = stream_through(waitress_portal, gw.token)
    assert status == 200
    assert recorder.drain(10)
    call = ModelCall.objects.get(run=gw.run)
    assert (call.input_tokens, call.output_tokens, str(call.cost_usd)) == (1200, 42, "0.004845")
    assert bytes(call.response_body) == b"".join(chunk for _, chunk in arrivals)
