"""Goldpath workspace agent: runs inside a workspace, dials OUT to the portal and serves terminals.

The link to the portal is a WebSocket.

Nothing dials in, so a workspace behind NAT works. Environment: GOLDPATH_AGENT_URL (ws:// or wss:// URL of the
workspace's agent link), GOLDPATH_AGENT_TOKEN (this start's token; removed from the environment at once and the
process made non-dumpable, so a shell it starts cannot read it from /proc), optional HTTPS_PROXY/HTTP_PROXY (an
HTTP proxy reached with CONNECT: the sandbox's only way out). Standard library only; reconnects with backoff.

Link protocol (catalog.terminals.protocol): portal -> agent text frames `{"op": "open"|"input"|"resize"|"close",
"session": hex, ...}`; agent -> portal `{"op": "hello"|"opened"|"exit", ...}` and binary frames of 16 session-id
bytes + PTY output.
"""

from __future__ import annotations

import base64
import ctypes
import fcntl
import hashlib
import json
import os
import pty
import random
import select
import signal
import socket
import ssl
import struct
import sys
import termios
import time
from urllib.parse import urlsplit

VERSION = 1
PING_EVERY_S = 20.0
READ_CHUNK = 65536
MAX_SESSIONS = 32
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def log(message: str) -> None:
    sys.stderr.write(f"goldpath-agent: {message}\n")
    sys.stderr.flush()


def non_dumpable() -> None:
    """PR_SET_DUMPABLE 0: /proc/<agent>/environ and memory stay closed to the shells it starts (same uid)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Closed(Exception):
    pass


class WebSocket:
    """A minimal RFC 6455 client: masked frames out, fragments and control frames handled in."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.closing = ""  # set by a close frame: the next feed() raises Closed

    @classmethod
    def connect(cls, url: str, token: str, timeout: float = 15.0) -> WebSocket:
        parts = urlsplit(url)
        secure = parts.scheme == "wss"
        host, port = parts.hostname or "", parts.port or (443 if secure else 80)
        proxy = os.environ.get("HTTPS_PROXY" if secure else "HTTP_PROXY") or os.environ.get("HTTP_PROXY") or ""
        if proxy:
            p = urlsplit(proxy)
            sock = socket.create_connection((p.hostname, p.port or 80), timeout=timeout)
            sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            head, _ = _read_head(sock)
            if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                sock.close()
                raise OSError(f"proxy refused: {head.splitlines()[0].decode('latin-1') if head else 'no answer'}")
        else:
            sock = socket.create_connection((host, port), timeout=timeout)
        if secure:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        key = base64.b64encode(os.urandom(16)).decode()
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        authority = host if port in (80, 443) else f"{host}:{port}"
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n"
            f"User-Agent: goldpath-workspace-agent/{VERSION}\r\n\r\n"
        )
        sock.sendall(request.encode())
        head, rest = _read_head(sock)
        lines = head.decode("latin-1").split("\r\n")
        if len(lines[0].split(" ")) < 2 or lines[0].split(" ")[1] != "101":
            sock.close()
            raise PermissionError(f"the portal refused the agent: {lines[0]}")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            sock.close()
            raise OSError("bad WebSocket handshake answer")
        sock.settimeout(None)
        ws = cls(sock)
        ws.buf = rest
        return ws

    def send(self, payload: bytes, opcode: int) -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 256 else _mask(payload, mask)
        self.sock.sendall(header + mask + masked)

    def send_text(self, text: str) -> None:
        self.send(text.encode(), 0x1)

    def send_binary(self, data: bytes) -> None:
        self.send(data, 0x2)

    def feed(self) -> list[tuple[int, bytes]]:
        """Read what the socket has; return complete (opcode, payload) messages. Closed when the peer went."""
        if self.closing:
            raise Closed(self.closing)
        try:
            data = self.sock.recv(READ_CHUNK)
        except ssl.SSLWantReadError:
            return []
        except OSError as exc:
            raise Closed(str(exc)) from None
        if not data:
            raise Closed("the portal closed the connection")
        self.buf += data
        messages = []
        while True:
            frame = self._frame()
            if frame is None:
                return messages
            opcode, payload = frame
            if opcode == 0x8:  # what came before the close (a new link token, say) is still handled
                code = f" ({struct.unpack('!H', payload[:2])[0]})" if len(payload) >= 2 else ""
                self.closing = f"the portal closed the link{code}"
                return messages
            if opcode == 0x9:
                self.send(payload, 0xA)
            elif opcode in (0x1, 0x2):
                messages.append((opcode, payload))

    def _frame(self) -> tuple[int, bytes] | None:
        buf = self.buf
        if len(buf) < 2:
            return None
        opcode, n, i = buf[0] & 0x0F, buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, i = struct.unpack("!H", buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, i = struct.unpack("!Q", buf[2:10])[0], 10
        if buf[1] & 0x80:  # a server never masks; tolerate it anyway
            mask, i = buf[i : i + 4], i + 4
        else:
            mask = b""
        if len(buf) < i + n:
            return None
        payload = buf[i : i + n]
        self.buf = buf[i + n :]
        if mask:
            payload = _mask(payload, mask)
        return opcode, payload  # servers here send unfragmented messages (FIN set); continuation is not used


def _mask(data: bytes, mask: bytes) -> bytes:
    n = len(data)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big") if n else 0
    return (int.from_bytes(data, "big") ^ key).to_bytes(n, "big") if n else b""


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head, bytes already read past it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > 65536:
            break
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


class Session:
    """One PTY running the user's shell."""

    def __init__(self, sid: bytes, cols: int, rows: int, env: dict[str, str]) -> None:
        self.sid = sid
        pid, fd = pty.fork()
        if pid == 0:  # the child: a login shell in the workspace
            try:  # the workspace's checkout: GOLDPATH_WORKDIR when set, else where the agent was started
                os.chdir(env.get("GOLDPATH_WORKDIR") or os.getcwd())
            except OSError:
                pass
            shell = env.get("SHELL") or ("/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh")
            try:
                os.execve(shell, [shell], env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        os.set_blocking(fd, False)
        self.resize(cols, rows)

    def resize(self, cols: int, rows: int) -> None:
        try:
            fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        except OSError:
            pass

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + 5
        while view:
            try:
                n = os.write(self.fd, view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return
                select.select([], [self.fd], [], 0.1)
            except OSError:
                return

    def close(self) -> None:
        try:
            os.killpg(os.getpgid(self.pid), signal.SIGHUP)
        except OSError:
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass
        reap(self.pid)


def reap(pid: int) -> int | None:
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 0
    return os.waitstatus_to_exitcode(status) if got else None


class Agent:
    def __init__(self, url: str, token: str, env: dict[str, str]) -> None:
        self.url, self.token, self.env = url, token, env
        self.sessions: dict[bytes, Session] = {}

    def run_forever(self) -> None:
        backoff = 0.5
        while True:
            try:
                ws = WebSocket.connect(self.url, self.token)
            except PermissionError as exc:  # a rotated token: this agent's start is over; keep trying slowly
                log(str(exc))
                time.sleep(min(backoff, 10.0))
                backoff = min(backoff * 2, 10.0)
                continue
            except OSError as exc:
                log(f"cannot reach the portal: {exc}")
                time.sleep(backoff + random.random() * 0.25)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.5
            log("connected")
            try:
                self.serve(ws)
            except Closed as exc:
                log(f"link closed: {exc}")
            finally:
                for s in list(self.sessions.values()):
                    s.close()
                self.sessions.clear()
                try:
                    ws.sock.close()
                except OSError:
                    pass

    def serve(self, ws: WebSocket) -> None:
        ws.send_text(json.dumps({"op": "hello", "version": VERSION}))
        last_ping = time.monotonic()
        while True:  # what arrived with the handshake answer
            frame = ws._frame()
            if frame is None:
                break
            self.handle(ws, *frame)
        while True:
            fds = {s.fd: s for s in self.sessions.values()}
            try:
                readable, _, _ = select.select([ws.sock, *fds], [], [], PING_EVERY_S / 2)
            except (OSError, ValueError):
                readable = []
            for fd in readable:
                if fd is ws.sock:
                    for opcode, payload in ws.feed():
                        try:
                            self.handle(ws, opcode, payload)
                        except (Closed, BrokenPipeError, ConnectionError):
                            raise
                        except Exception as exc:  # noqa: BLE001 - one bad message must not end the agent
                            log(f"message not handled: {exc!r}")
                    if ws.closing:
                        raise Closed(ws.closing)
                    continue
                session = fds[fd]
                try:
                    data = os.read(fd, READ_CHUNK)
                except BlockingIOError:
                    continue
                except OSError:  # EIO: the shell and every process on its terminal are gone
                    data = b""
                if data:
                    ws.send_binary(session.sid + data)
                else:
                    self.end(ws, session)
            if time.monotonic() - last_ping > PING_EVERY_S:
                ws.send(b"", 0x9)
                last_ping = time.monotonic()

    def end(self, ws: WebSocket, session: Session) -> None:
        self.sessions.pop(session.sid, None)
        session.close()
        ws.send_text(json.dumps({"op": "exit", "session": session.sid.hex()}))

    def handle(self, ws: WebSocket, opcode: int, payload: bytes) -> None:
        if opcode != 0x1:
            return
        try:
            msg = json.loads(payload)
            if msg.get("op") == "token" and isinstance(msg.get("token"), str):
                self.token = msg["token"]  # the link token: the start token is spent (kept in memory only)
                return
            sid = bytes.fromhex(msg["session"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        if len(sid) != 16:
            return
        op, session = msg.get("op"), self.sessions.get(sid)
        if op == "open" and session is None and len(self.sessions) < MAX_SESSIONS:
            cols, rows = _int(msg.get("cols"), 80), _int(msg.get("rows"), 24)
            self.sessions[sid] = Session(sid, cols, rows, self.env)
            ws.send_text(json.dumps({"op": "opened", "session": sid.hex()}))
        elif op == "input" and session is not None and isinstance(msg.get("data"), str):
            session.write(msg["data"].encode("utf-8", "replace"))
        elif op == "resize" and session is not None:
            session.resize(_int(msg.get("cols"), 80), _int(msg.get("rows"), 24))
        elif op == "close" and session is not None:
            self.sessions.pop(sid, None)
            session.close()


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and 0 < value < 10000 else default


def main() -> int:
    url = os.environ.pop("GOLDPATH_AGENT_URL", "")
    token = os.environ.pop("GOLDPATH_AGENT_TOKEN", "")
    if not url or not token:
        log("GOLDPATH_AGENT_URL and GOLDPATH_AGENT_TOKEN are required")
        return 2
    non_dumpable()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLDPATH_AGENT_")}
    env.setdefault("TERM", "xterm-256color")
    env.setdefault("LANG", "C.UTF-8")
    env.setdefault("PS1", r"\[\e[1;33m\]workspace\[\e[0m\]:\w\$ ")
    Agent(url, token, env).run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
