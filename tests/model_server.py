"""A local model server process for tests: the scripted model behind the vendors' HTTP endpoints.

    python -m tests.model_server --port 0 --log FILE [--label TEXT] [--models ID,ID]

prints ``PORT <n>`` as its first stdout line, then serves ``POST /v1/messages`` (Anthropic),
``POST /v1/responses`` (OpenAI Responses), ``POST /v1/chat/completions`` (OpenAI Chat) and
``GET /v1/models``; anything else is a 404 JSON error. Streamed answers go out as chunked SSE, one
event per chunk, flushed one by one. Every request is appended to the log as one JSON line
(method, path, lower-cased headers, raw body text, time) so tests can assert what the gateway
forwarded. Standard library only (plus catalog.gateway.scripted, itself stdlib only).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from catalog.gateway.scripted import models_list, respond

ROUTES = {
    "/v1/messages": "anthropic-messages",
    "/v1/responses": "openai-responses",
    "/v1/chat/completions": "openai-chat",
}
MAX_BODY = 64 * 1024 * 1024
SLOW_MARKER = "[slow]"  # a conversation holding it is answered after --slow-delay seconds


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, log_path: str, label: str, models: list[str]):
        super().__init__(address, Handler)
        self.log_path = log_path
        self.label = label
        self.models = models
        self.log_lock = threading.Lock()
        self.ws_probe_status = 426
        self.slow_delay = 2.0

    def log_request_line(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self.log_lock, open(self.log_path, "a", encoding="utf-8") as log:
            log.write(line)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ModelServer
    server_version = "GoldpathModelServer/1"

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass  # the JSON log is the record; keep stderr quiet

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
                if len(data) > MAX_BODY:
                    raise ValueError("body too large")
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise ValueError("bad length")
        return self.rfile.read(length) if length else b""

    def _record(self, body: bytes) -> None:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        self.server.log_request_line(
            {
                "time": time.time(),
                "method": self.command,
                "path": self.path,
                "headers": headers,
                "body": body.decode("utf-8", "replace"),
            }
        )

    def _send_json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, kind: str, message: str) -> None:
        self._send_json(status, {"type": "error", "error": {"type": kind, "message": message}})

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self._record(b"")
            self._error(400, "invalid_request_error", "unreadable body")
            return
        self._record(body)
        path = urlsplit(self.path).path.rstrip("/")
        if self.command == "GET" and path == "/v1/responses" and self.headers.get("Upgrade", "").lower() == "websocket":
            # Codex probes for a WebSocket transport first; this answer makes it fall back to POST at once.
            self._error(
                self.server.ws_probe_status, "invalid_request_error", "websocket transport not supported; use POST"
            )
            return
        if self.command == "GET" and path == "/v1/models":
            flavor = "anthropic" if "anthropic-version" in self.headers else "openai"
            self._send_json(200, models_list(flavor, self.server.models))
            return
        protocol = ROUTES.get(path)
        if self.command != "POST" or protocol is None:
            self._error(404, "not_found_error", f"no route for {self.command} {path or '/'}")
            return
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = None
        if not isinstance(request, dict):
            self._error(400, "invalid_request_error", "body is not a JSON object")
            return
        if SLOW_MARKER in body.decode("utf-8", "replace"):
            time.sleep(self.server.slow_delay)  # lets a test change something while the call is in flight
        answer = respond(protocol, request, label=self.server.label)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        if answer.content_type != "text/event-stream":
            data = b"".join(answer.chunks)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in answer.chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle  # noqa: N815


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--log", required=True)
    parser.add_argument("--label", default="Goldpath test model server")
    parser.add_argument("--models", default="demo", help="comma-separated ids GET /v1/models lists")
    parser.add_argument("--ws-probe-status", type=int, default=426, help="the answer to Codex's WebSocket probe")
    parser.add_argument("--slow-delay", type=float, default=2.0, help="delay for conversations holding [slow]")
    args = parser.parse_args(argv)
    server = ModelServer((args.host, args.port), args.log, args.label, [m for m in args.models.split(",") if m])
    server.ws_probe_status = args.ws_probe_status
    server.slow_delay = args.slow_delay
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])
