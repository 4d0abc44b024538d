"""Attack setup: the portal served by waitress (as `make run` does) and a scriptable vendor upstream in-process."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.gateway.conftest import waitress_portal  # noqa: F401 - the fixture


class Upstream(ThreadingHTTPServer):
    """A vendor stand-in. `mode` picks the answer; every request body is kept (raw) in `bodies`."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "json"
        self.delay = 0.0
        self.usage = {"input_tokens": 10, "output_tokens": 10}
        self.bodies: list[bytes] = []
        self.headers_seen: list[dict] = []
        self.deltas_sent = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


def _event(data: dict) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Upstream

    def log_message(self, *args):
        pass

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.bodies.append(body)
            self.server.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
        if self.server.delay:
            time.sleep(self.server.delay)
        if self.server.mode == "json":
            # the model the vendor's parser saw: the FIRST `model` key (a first-wins JSON parser)
            pairs = json.loads(body, object_pairs_hook=lambda kv: kv)
            served = next(v for k, v in pairs if k == "model")
            data = json.dumps(
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": served,
                    "content": [{"type": "text", "text": "ok"}],
                    "stop_reason": "end_turn",
                    "usage": self.server.usage,
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        # "endless": a long generation, one token per event, usage only at the end (as Anthropic streams)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        start = {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-opus-4-1",
                "content": [],
                "usage": {"input_tokens": 10, "output_tokens": 1},
            },
        }
        try:
            self._chunk(_event(start))
            self._chunk(
                _event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
            )
            n = 0
            for n in range(1, 3001):
                delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "tok "}}
                self._chunk(_event(delta))
                self.server.deltas_sent = n
                time.sleep(0.005)
            self._chunk(_event({"type": "content_block_stop", "index": 0}))
            self._chunk(
                _event({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": n}})
            )
            self._chunk(_event({"type": "message_stop"}))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:  # the gateway hung up: a vendor stops generating here and bills what it generated
            self.close_connection = True


@pytest.fixture
def vendor():
    server = Upstream()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()
