"""GOLDPATH_HOME stays private: 0700 directories and 0600 files, and keys generated there once.

Everything under GOLDPATH_HOME is readable by its owner only (the SQLite database holds tokens and
sessions, Terraform state holds outputs, keys sign and encrypt). `secure_home()` sets the process
umask to 077, creates the home 0700 and tightens an existing one (a home made by an older version
was 0755 with 0644 files). `read_or_create_secret()` makes a key file 0600 exactly once, even when
several processes start at the same time.

No Django here: portal/settings.py calls these before Django is configured.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

PRIVATE_UMASK = 0o077
MAX_DEPTH = 64  # deeper trees (only a hostile agent makes them) stay behind the 0700 home
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class HomeError(RuntimeError):
    """GOLDPATH_HOME cannot be made private (a shared folder such as /tmp, or not ours)."""


def private_umask() -> None:
    """Files and folders this process creates are its owner's only."""
    os.umask(PRIVATE_UMASK)


def secure_home(path: str | os.PathLike[str]) -> Path:
    """Set the umask, create GOLDPATH_HOME 0700 (or tighten it and what it holds); return it resolved."""
    private_umask()
    home = Path(path).resolve()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = home.stat()
    if home == Path(home.anchor) or (st.st_mode & stat.S_ISVTX and st.st_mode & stat.S_IWOTH):
        raise HomeError(f"GOLDPATH_HOME={home} is a shared folder; give Goldpath a folder of its own.")
    try:
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(home, 0o700)
    except PermissionError as exc:
        raise HomeError(f"GOLDPATH_HOME={home} is not owned by this user; it cannot be made private.") from exc
    tighten(home)
    return home


def tighten(root: Path) -> None:
    """Drop group/other (and setuid/setgid) bits of the folders and regular files under `root`.

    Walks by directory file descriptors and never follows a symlink, so a link planted under the
    home (an agent's checkout lives there) cannot redirect a chmod elsewhere. Sockets and FIFOs
    are left alone; entries that vanish or refuse are skipped.
    """
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError:
        return
    try:
        _tighten_dir(fd, 0)
    finally:
        os.close(fd)


def _loose(mode: int) -> bool:
    return bool(mode & (0o077 | stat.S_ISUID | stat.S_ISGID))


def _tighten_dir(dir_fd: int, depth: int) -> None:
    try:
        entries = list(os.scandir(dir_fd))
    except OSError:
        return
    for entry in entries:
        if depth == 0 and entry.name == "tools":
            continue  # tool runtimes: public packages a sandbox uid reads (catalog.runtimes); the 0700 home keeps others out
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            if depth >= MAX_DEPTH:
                continue
            try:
                sub = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                if _loose(os.fstat(sub).st_mode):
                    os.fchmod(sub, stat.S_IMODE(os.fstat(sub).st_mode) & 0o700)
                _tighten_dir(sub, depth + 1)
            except OSError:
                pass
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode) and _loose(st.st_mode):
            _tighten_file(dir_fd, entry.name)


def _tighten_file(dir_fd: int, name: str) -> None:
    # O_PATH|O_NOFOLLOW pins the entry itself (a symlink swapped in stays a symlink and is skipped);
    # chmod through /proc/self/fd works without read permission on the file.
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and _loose(st.st_mode):
            os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(st.st_mode) & 0o700)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_or_create_secret(path: str | os.PathLike[str], make: Callable[[], bytes]) -> bytes:
    """The content of key file `path`, generating it with `make()` first when it does not exist.

    The key is written whole to a private temporary file and published with link(2), which fails
    when the name exists: of several processes racing, one wins and all read the winner's key.
    """
    target = Path(path)
    try:
        return _read_key(target)
    except FileNotFoundError:
        pass
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(make())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError:
            pass  # another process published its key first: use theirs
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key(target)


def _read_key(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        value = fh.read().strip()
    if not value:
        raise HomeError(f"{path} is empty; remove it to generate a new key.")
    return value
