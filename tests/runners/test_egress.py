"""Egress proxy: allow-list matching, 403 for others, every attempt reported."""

from __future__ import annotations

import socket
import threading

from catalog.runners.egress import EgressProxy, host_allowed


def test_host_allowed_patterns():
    hosts = ["api.anthropic.com", "*.github.com"]
    assert host_allowed("api.anthropic.com", hosts)
    assert host_allowed("API.Anthropic.com.", hosts)
    assert host_allowed("codeload.github.com", hosts)
    assert not host_allowed("github.com", hosts)
    assert not host_allowed("evilgithub.com", hosts)
    assert not host_allowed("anthropic.com", hosts)


def _ask(sock_path: str, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock_path)
        s.sendall(request)
        return s.recv(4096)


def test_proxy_denies_and_logs(tmp_path):
    seen: list[tuple[str, int, bool]] = []
    proxy = EgressProxy(tmp_path / "p.sock", ["allowed.test"], lambda h, p, a: seen.append((h, p, a)))
    proxy.start()
    try:
        assert _ask(str(tmp_path / "p.sock"), b"CONNECT example.com:443 HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 403")
        assert _ask(
            str(tmp_path / "p.sock"), b"GET http://example.org/x HTTP/1.1\r\nHost: example.org\r\n\r\n"
        ).startswith(b"HTTP/1.1 403")
    finally:
        proxy.stop()
    assert seen == [("example.com", 443, False), ("example.org", 80, False)]
    assert not (tmp_path / "p.sock").exists()


def test_proxy_allows_listed_host(tmp_path):
    """An allowed CONNECT to a local TCP echo server is tunnelled."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def echo() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.sendall(conn.recv(100).upper())

    threading.Thread(target=echo, daemon=True).start()
    seen: list[tuple[str, int, bool]] = []
    proxy = EgressProxy(tmp_path / "p.sock", ["127.0.0.1"], lambda h, p, a: seen.append((h, p, a)))
    proxy.start()
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(tmp_path / "p.sock"))
            s.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            s.sendall(b"ping")
            assert s.recv(100) == b"PING"
    finally:
        proxy.stop()
        srv.close()
    assert seen == [("127.0.0.1", port, True)]
