"""The terminal socket from the CLI's side: relay keystrokes and output, and report how the session ended.

It speaks issue 15's protocol and connects with the API token. Three ways to drive it: an interactive terminal
(raw mode), piped standard input (scripts), and one command (`-c`), whose output is cut out of the terminal's
stream by markers.

Two threads: the main one reads standard input (and SIGWINCH, through a wake-up pipe) and sends; a reader
thread receives output and the close. websockets' sync connection allows one sender and one receiver thread."""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import select
import signal
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from .errors import CliError

CLOSE_NORMAL = 1000
CLOSE_ABNORMAL = 1006
QUIET_S = 5.0  # piped input: after standard input ended, how long output may pause before we hang up
READ_CHUNK = 4096


@dataclass
class Ending:
    """How a session ended: the close code (1006: the connection dropped), and the command's exit status (-c)."""

    code: int
    reason: str = ""
    by_us: bool = False
    status: int | None = None


class HandshakeRefused(CliError):
    """The portal answered the upgrade with an HTTP status instead of a WebSocket."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def open_socket(url: str, token: str, user_agent: str) -> ClientConnection:
    """Connect, or raise HandshakeRefused (an HTTP answer) / CliError (unreachable), never a library error."""
    try:
        return connect(
            url,
            additional_headers={"Authorization": f"Token {token}"},
            user_agent_header=user_agent,
            compression=None,  # keystrokes are a few bytes: compressing them only adds latency
            open_timeout=20,
            close_timeout=5,
        )
    except InvalidStatus as exc:
        raise HandshakeRefused(exc.response.status_code) from exc
    except InvalidURI as exc:
        raise CliError(f"Not a WebSocket address: {url} ({exc}).") from exc
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        detail = str(exc) or type(exc).__name__
        raise CliError(f"Cannot reach the portal's terminal at {url}: {detail}") from exc


class Relay:
    """One open terminal socket: a reader thread hands output to `sink`; `ending` is set when the socket closes."""

    def __init__(self, sock: ClientConnection, sink: Callable[[bytes], bool]) -> None:
        self.sock = sock
        self.sink = sink  # returns False to hang up (a -c command finished, stdout went away)
        self.ending: Ending | None = None
        self.hung_up = False
        self.last_output = time.monotonic()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.thread = threading.Thread(target=self._receive, name="goldpath-terminal", daemon=True)

    def start(self) -> Relay:
        self.thread.start()
        return self

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # a full pipe already wakes the main thread
            os.write(self.wake_w, b".")

    def _receive(self) -> None:
        try:
            while True:
                frame = self.sock.recv()
                if isinstance(frame, bytes) and frame and not self.hung_up:  # frames queued before our close
                    self.last_output = time.monotonic()
                    if not self.sink(frame):
                        self.hang_up()
        except ConnectionClosed as exc:
            code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (CLOSE_ABNORMAL, "")
            self.ending = Ending(code, reason, by_us=self.hung_up)
        except Exception as exc:  # noqa: BLE001 - the main thread turns any failure into a message
            self.ending = Ending(CLOSE_ABNORMAL, str(exc) or type(exc).__name__)
        finally:
            self.wake()

    def send(self, message: dict) -> bool:
        """False once the socket is closed (the reader thread then reports why)."""
        try:
            self.sock.send(json.dumps(message))
        except ConnectionClosed:
            return False
        return True

    def hang_up(self) -> None:
        self.hung_up = True
        with contextlib.suppress(Exception):
            self.sock.close()

    def finish(self, timeout: float = 6.0) -> Ending:
        if self.thread.ident is not None:
            self.thread.join(timeout)
        if self.thread.is_alive():  # it may still wake us: its pipe stays open (the process exits soon)
            return self.ending or Ending(CLOSE_ABNORMAL, "no close from the portal", by_us=self.hung_up)
        for fd in (self.wake_r, self.wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        return self.ending or Ending(CLOSE_ABNORMAL, "no close from the portal", by_us=self.hung_up)


def write_all(fd: int, data: bytes) -> bool:
    """Write everything to `fd`; False when the reader went away (`goldpath shell ... | head`)."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except (BrokenPipeError, OSError):
        return False
    return True


def terminal_size(fd: int) -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return (size.columns, size.lines) if size.columns and size.lines else None


class _Stop(Exception):  # noqa: N818 - SIGTERM/SIGHUP while the terminal is raw: unwind so it is restored
    pass


def _raise_stop(*_: object) -> None:
    raise _Stop


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """The local terminal in raw mode (every key goes to the workspace, Ctrl-C included), restored however we
    leave: return, exception, SIGTERM or SIGHUP."""
    saved = termios.tcgetattr(fd)
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _pump(relay: Relay, stdin_fd: int | None, on_wake: Callable[[], None], piped: bool) -> None:
    """Send standard input until the socket closes; piped input ends with an EOF key (Ctrl-D, as for a shell
    reading a pipe), then we hang up once output has paused QUIET_S (a shell that ignores EOF)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    eof_at: float | None = None
    while relay.ending is None and not relay.hung_up:
        watched = [relay.wake_r] + ([stdin_fd] if stdin_fd is not None and eof_at is None else [])
        wait = None
        if eof_at is not None:
            wait = max(0.05, QUIET_S - (time.monotonic() - max(eof_at, relay.last_output)))
        ready, _, _ = select.select(watched, [], [], wait)
        if relay.wake_r in ready:
            with contextlib.suppress(OSError):
                os.read(relay.wake_r, 512)
            on_wake()
        if stdin_fd is not None and stdin_fd in ready:
            chunk = os.read(stdin_fd, READ_CHUNK)
            text = decoder.decode(chunk, final=not chunk)
            if chunk and text and not relay.send({"data": text}):
                break
            if not chunk:
                eof_at = time.monotonic()
                if piped and not relay.send({"data": "\x04"}):
                    break
        if eof_at is not None and time.monotonic() - max(eof_at, relay.last_output) >= QUIET_S:
            relay.hang_up()


def interactive(sock: ClientConnection, stdin_fd: int, stdout_fd: int) -> Ending:
    """A terminal on a TTY: raw mode, keystrokes as typed, the window size now and on every SIGWINCH."""
    relay = Relay(sock, lambda data: write_all(stdout_fd, data))
    resized = threading.Event()

    def on_winch(*_: object) -> None:
        resized.set()
        relay.wake()

    def on_wake() -> None:
        if resized.is_set():
            resized.clear()
            size = terminal_size(stdout_fd) or terminal_size(stdin_fd)
            if size:
                relay.send({"resize": {"cols": size[0], "rows": size[1]}})

    previous = signal.signal(signal.SIGWINCH, on_winch)
    try:
        with raw_terminal(stdin_fd):
            relay.start()
            resized.set()
            on_wake()
            _pump(relay, stdin_fd, on_wake, piped=False)
    except _Stop:
        relay.hang_up()
    finally:
        signal.signal(signal.SIGWINCH, previous)
    return relay.finish()


def piped(sock: ClientConnection, stdin_fd: int, stdout_fd: int) -> Ending:
    """Standard input that is not a terminal: relayed as typed text, output copied as it comes."""
    relay = Relay(sock, lambda data: write_all(stdout_fd, data)).start()
    size = terminal_size(stdout_fd)
    if size:
        relay.send({"resize": {"cols": size[0], "rows": size[1]}})
    _pump(relay, stdin_fd, lambda: None, piped=True)
    return relay.finish()


class CommandOutput:
    """The output of one command typed into the terminal, cut out of the terminal's stream: everything before
    the begin marker (prompt, the typed line's echo) is dropped, the end marker carries the exit status. The
    markers are printed by `printf` from split strings, so the echo of the typed line never contains them."""

    def __init__(self, tag: str, write: Callable[[bytes], bool]) -> None:
        self.begin = f"B{tag}".encode()
        self.end = re.compile(rb"\r?\nE" + tag.encode() + rb" (\d+)\r?\n")
        self.write = write
        self.buffer = b""
        self.started = False
        self.crlf = False  # `stty -onlcr` did not take: undo the terminal's \n -> \r\n
        self.status: int | None = None

    def feed(self, data: bytes) -> bool:
        """False when the command is done (or stdout went away): time to hang up."""
        if self.status is not None:
            return False
        self.buffer += data
        if not self.started:
            at = self.buffer.find(self.begin)
            newline = self.buffer.find(b"\n", at) if at >= 0 else -1
            if newline < 0:
                return True
            self.started = True
            self.crlf = self.buffer[newline - 1 : newline] == b"\r"
            self.buffer = self.buffer[newline + 1 :]
        found = self.end.search(self.buffer)
        if found:
            self.status = int(found.group(1))
            body, self.buffer = self.buffer[: found.start()], b""
            self._emit(body)
            return False
        # keep back what could be the start of the end marker (and a \r whose \n has not come yet)
        cut = max(0, len(self.buffer) - len(self.begin) - 16)
        if cut and self.buffer[cut - 1 : cut] == b"\r":
            cut -= 1
        ready, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return self._emit(ready)

    def flush(self) -> None:
        """The session ended without the end marker (the command exited the shell): show what came."""
        if self.started and self.status is None:
            self._emit(self.buffer)
            self.buffer = b""

    def _emit(self, data: bytes) -> bool:
        if self.crlf:
            data = data.replace(b"\r\n", b"\n")
        return self.write(data) if data else True


def command_line(command: str, tag: str) -> str:
    """What is typed: echo off, the begin marker, the command through `eval` (its quotes, `#` or `&` cannot
    swallow what follows), the end marker with its status, `exit`. Leading space: kept out of the history."""
    quoted = "'" + command.replace("'", "'\\''") + "'"
    head, tail = tag[:4], tag[4:]
    return (
        f" stty -echo -onlcr 2>/dev/null; printf 'B%s%s\\n' {head} {tail}; eval {quoted}; "
        f"printf '\\nE%s%s %s\\n' {head} {tail} \"$?\"; exit\r"
    )


def run_command(sock: ClientConnection, command: str, stdout_fd: int) -> Ending:
    """Type one command, print its output, hang up when its end marker arrives; Ctrl-C hangs up too."""
    tag = os.urandom(6).hex()
    output = CommandOutput(tag, lambda data: write_all(stdout_fd, data))
    relay = Relay(sock, output.feed).start()
    size = terminal_size(stdout_fd)
    try:
        if size:
            relay.send({"resize": {"cols": size[0], "rows": size[1]}})
        relay.send({"data": command_line(command, tag)})
        _pump(relay, None, lambda: None, piped=False)
    except KeyboardInterrupt:
        relay.hang_up()
        relay.finish()
        raise
    ending = relay.finish()
    output.flush()
    ending.status = output.status
    return ending


def stdin_fd() -> int | None:
    try:
        return sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return None
