"""Runs inside a sandbox (copied there, started with `python -I -S`): the agent's loopback HTTP(S) proxy.

`forwarder.py PORT SOCKET -- CMD...` listens on 127.0.0.1:PORT in the sandbox's own network namespace,
starts CMD (fork + exec, after the port is listening, so the agent never races it) and relays each
connection byte for byte to the egress proxy's Unix socket outside, which checks and logs every request.
It exits with CMD's exit code. Single-threaded (poll) and importing only C modules: it delays the agent by
the interpreter's start and nothing more.
"""

import _socket
import os
import select
import sys

READ = select.POLLIN | select.POLLHUP | select.POLLERR


def main() -> int:
    port, path, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[4:]
    srv = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    srv.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(128)
    srv.setblocking(False)
    pid = os.fork()
    if pid == 0:
        srv.close()
        try:
            os.execvp(cmd[0], cmd)
        except OSError as exc:
            os.write(2, f"cannot start {cmd[0]}: {exc.strerror}\n".encode())
        os._exit(127)
    child = os.pidfd_open(pid)
    poll = select.poll()
    poll.register(srv.fileno(), select.POLLIN)
    poll.register(child, select.POLLIN)
    socks: dict[int, object] = {}
    peer: dict[int, int] = {}
    pending: dict[int, bytes] = {}  # fd -> bytes still to write to it
    closing: set[int] = set()  # fds whose peer hung up: closed once their pending bytes are written

    def close(fd: int) -> None:
        for f in (fd, peer.get(fd)):
            if f is not None and f in socks:
                poll.unregister(f)
                socks.pop(f).close()
                peer.pop(f, None)
                pending.pop(f, None)
                closing.discard(f)

    while True:
        for fd, event in poll.poll():
            if fd == child:
                status = os.waitpid(pid, 0)[1]
                code = os.waitstatus_to_exitcode(status)
                return code if code >= 0 else 128 - code
            if fd == srv.fileno():
                try:
                    conn, _ = srv._accept()
                except OSError:
                    continue
                a = _socket.socket(fileno=conn)
                b = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                try:
                    b.connect(path)
                except OSError:
                    a.close()
                    b.close()
                    continue
                a.setblocking(False)
                b.setblocking(False)
                for s in (a, b):
                    socks[s.fileno()] = s
                    poll.register(s.fileno(), READ)
                peer[a.fileno()], peer[b.fileno()] = b.fileno(), a.fileno()
                continue
            if fd not in socks:
                continue
            other = peer[fd]
            if event & select.POLLOUT:
                data = pending.pop(fd, b"")
                try:
                    sent = socks[fd].send(data)
                except OSError:
                    close(fd)
                    continue
                if sent < len(data):
                    pending[fd] = data[sent:]
                elif fd in closing:
                    close(fd)
                else:
                    poll.modify(fd, READ)
                    poll.modify(other, READ)
                continue
            try:
                data = socks[fd].recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                if other in pending:  # write what the other side is still owed, then close both
                    closing.add(other)
                    poll.modify(fd, 0)
                else:
                    close(fd)
                continue
            try:
                sent = socks[other].send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                close(fd)
                continue
            if sent < len(data):  # the other side is slow: stop reading here until it drained
                pending[other] = data[sent:]
                poll.modify(other, select.POLLOUT | select.POLLHUP | select.POLLERR)
                poll.modify(fd, select.POLLHUP | select.POLLERR)


if __name__ == "__main__":
    sys.exit(main())
