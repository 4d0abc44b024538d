"""The egress proxy's model gateway route: a sandbox's `/v1/...` calls reach the web tier's /gateway/v1/ and
nothing else, streamed through, with forwarding headers and cookies dropped."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from catalog.runners.egress import EgressProxy, GatewayRoute
from tests.runners.test_egress import _Client, upstream  # noqa: F401 - the fixture


class _Streamer(BaseHTTPRequestHandler):
    """A web tier stand-in that answers SSE in events written one by one."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.path, dict(self.headers), body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(3):
            event = f"event: n\ndata: {i}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def web():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Streamer)
    server.daemon_threads = True
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def relay(tmp_path, web):
    seen: list = []
    route = GatewayRoute.from_url(f"http://127.0.0.1:{web.server_address[1]}/portal/")
    proxy = EgressProxy(tmp_path / "g.sock", [], lambda h, p, a: seen.append((h, p, a)), gateway=route)
    proxy.start()
    yield proxy.socket_path, seen
    proxy.stop()


def _post(path: str, target: str, headers: str = "") -> object:
    body = json.dumps({"model": "m"})
    with _Client(path) as c:
        c.send(
            f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1:3128\r\nContent-Type: application/json\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n{body}"
        )
        return c.response("POST")


@pytest.mark.parametrize("target", ["/v1/messages?beta=true", "http://127.0.0.1:3128/v1/messages?beta=true"])
def test_a_model_call_reaches_the_gateway_streamed(relay, web, target):
    path, seen = relay
    r = _post(path, target, "Cookie: sessionid=x\r\nX-Forwarded-Proto: https\r\nX-Api-Key: gpg_tok\r\n")
    assert r.status == 200 and r.body == b"event: n\ndata: 0\n\nevent: n\ndata: 1\n\nevent: n\ndata: 2\n\n"
    ((got_path, headers, body),) = web.seen
    assert got_path == "/portal/gateway/v1/messages?beta=true" and json.loads(body) == {"model": "m"}
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered["x-api-key"] == "gpg_tok" and lowered["host"] == f"127.0.0.1:{web.server_address[1]}"
    assert "cookie" not in lowered and "x-forwarded-proto" not in lowered
    assert seen == []  # not an egress decision: the gateway meters it


@pytest.mark.parametrize(
    "target",
    [
        "/api/v1/tools/",
        "/v1/../api/v1/tools/",
        "/v1/./messages",
        "/v1/%2e%2e/admin/",
        "/v1//messages",
        "/gateway/v1/messages",
        "/",
    ],
)
def test_only_gateway_paths_pass(relay, web, target):
    path, _ = relay
    assert _post(path, target).status == 404
    assert web.seen == []


def test_other_hosts_still_go_through_the_allow_list(relay, web, upstream):  # noqa: F811
    path, seen = relay
    port = upstream.server_address[1]
    assert _post(path, f"http://127.0.0.1:{port}/v1/messages").status == 403
    assert seen == [("127.0.0.1", port, False)] and upstream.seen == [] and web.seen == []


def test_unreachable_gateway_is_a_502(tmp_path):
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    proxy = EgressProxy(tmp_path / "u.sock", [], gateway=GatewayRoute.from_url(f"http://127.0.0.1:{port}"))
    proxy.start()
    try:
        r = _post(proxy.socket_path, "/v1/messages")
    finally:
        proxy.stop()
    assert r.status == 502 and b"unreachable" in r.body


def test_without_a_gateway_origin_form_is_still_refused(tmp_path):
    proxy = EgressProxy(tmp_path / "n.sock", [])
    proxy.start()
    try:
        assert _post(proxy.socket_path, "/v1/messages").status == 400
    finally:
        proxy.stop()
