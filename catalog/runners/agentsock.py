"""The run's own socket: the only way an agent identity token reaches the portal.

A threaded HTTP server on a Unix socket in the run's private directory, bound into that run's sandbox
only. It serves a WSGI app (the portal's Django handler), but lets through nothing except POSTs to the
paths it is given (the run's own agent endpoints), and marks each request it forwards with
`goldpath.agent_socket_run` in the WSGI environ. No HTTP client can set that key (headers become
`HTTP_*`), so the API's agent authentication can refuse every agent token that did not come this way.
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import socketserver
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler

ENVIRON_KEY = "goldpath.agent_socket_run"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Handler(WSGIRequestHandler):
    def setup(self) -> None:
        super().setup()
        self.client_address = ("127.0.0.1", 0)  # AF_UNIX peers have no address; WSGI wants one

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, app: WSGIApp):
        super().__init__(path, _Handler)
        self.app = app
        self.base_environ = {
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "0",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SCRIPT_NAME": "",
            "CONTENT_LENGTH": "",
        }

    def get_app(self) -> WSGIApp:
        return self.app


class AgentSocket:
    """Serve `app` on `path` for one run: only POST to `paths` (regexes), each marked with `run_id`."""

    def __init__(
        self, path: str | os.PathLike[str], app: WSGIApp, *, run_id: str, paths: list[str], host: str = "localhost"
    ):
        self.path = Path(path)
        self.app = app
        self.run_id = str(run_id)
        self.allowed = [re.compile(p) for p in paths]
        self.host = host
        self.requests = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _gate(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # Read the whole body first: the server closes the connection after answering, and a client whose
        # body was still on its way (sent after the headers) would get a broken pipe instead of the answer.
        body = _read_body(environ)
        if body is None:
            start_response("413 Request Entity Too Large", [("Content-Type", "application/json")])
            return [json.dumps({"detail": f"Bodies over {MAX_BODY} bytes are refused."}).encode()]
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "POST" or not any(r.fullmatch(path) for r in self.allowed):
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [json.dumps({"detail": "Only this run's own agent endpoints are served on its socket."}).encode()]
        self.requests += 1
        environ[ENVIRON_KEY] = self.run_id
        environ["HTTP_HOST"] = self.host  # the portal's own name: the socket is not reachable by host
        environ["wsgi.url_scheme"] = "https"  # the socket is private: treat it as a secure channel
        environ["HTTP_X_FORWARDED_PROTO"] = "https"
        return self.app(environ, start_response)

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        self._server = _Server(str(self.path), self._gate)
        os.chmod(self.path, 0o600)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._serve, name=f"agent-socket-{self.run_id}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        """Accept until stop(): woken by a pipe, so stopping costs no polling interval."""
        server = self._server
        assert server is not None
        while True:
            ready, _, _ = select.select([server.socket, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            server._handle_request_noblock()

    def stop(self) -> None:
        if self._server is not None:
            os.write(self._wake_w, b"x")
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server.server_close()
            self._server = None
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
        self.path.unlink(missing_ok=True)


MAX_BODY = 4 << 20  # progress and results are small; Django's own limit is 2.5 MB


def _read_body(environ: dict[str, Any]) -> bytes | None:
    """The request body (None when it is over MAX_BODY)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        return None
    stream, chunks, left = environ["wsgi.input"], [], length
    while left > 0:
        chunk = stream.read(min(left, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def portal_host() -> str:
    """A host name the portal accepts (ALLOWED_HOSTS), for requests that arrive on a run's socket."""
    from django.conf import settings

    for host in settings.ALLOWED_HOSTS:
        if host != "*":
            return host.lstrip(".")
    return "localhost"
