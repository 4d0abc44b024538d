"""Files of a workspace checkout, read and written by the worker without trusting a byte of it.

The checkout (`GOLDPATH_HOME/workspaces/<id>/src`) is the developer's: every name, link, mode and its `.git`
are hostile, and the developer may change them while we work. So no git ever runs there on the host: files are
read into a folder of ours (copy_out) and written back (write_back) with plain system calls, walking by
directory file descriptors with O_NOFOLLOW, so a link swapped in mid-way is never followed (no host file is
read into a run, none is written outside the checkout). `.git` entries, at any depth, are never read or written;
special files (fifos, sockets, devices) are skipped.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..conf import goldpath_home

MAX_FILES = 200_000
MAX_BYTES = 2 << 30  # 2 GiB: larger checkouts are refused with a clear message
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # a fifo never blocks the open
SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
REF_RE = re.compile(r"^refs/heads/[A-Za-z0-9._/+-]{1,200}$")


class TreeError(RuntimeError):
    """The checkout cannot be read or written safely; the message is for the user (no host path in it)."""


@dataclass
class Manifest:
    """What copy_out saw: per relative path, ("f", sha256, executable) or ("l", link target)."""

    entries: dict[str, tuple] = field(default_factory=dict)
    bytes: int = 0


def checkout_path(workspace_id) -> Path:
    """The local-sandbox checkout of a workspace: computed, never taken from a template's outputs."""
    return goldpath_home() / "workspaces" / str(workspace_id) / "src"


def has_checkout(top: Path) -> bool:
    """A real directory with a `.git` directory (no links anywhere on the last two steps)."""
    try:
        return stat.S_ISDIR(os.lstat(top).st_mode) and stat.S_ISDIR(os.lstat(top / ".git").st_mode)
    except OSError:
        return False


def _open_top(top: Path) -> int:
    try:
        return os.open(top, _DIR)
    except OSError:
        raise TreeError("The workspace has no checkout to read (it is missing or not a folder).") from None


def _stream_fd(fd: int, limit: int, out: int | None = None) -> tuple[int, str]:
    """(size, sha256) of what fd holds, copied to `out` when given, a chunk at a time: a checkout's file (a
    sparse 2 GiB one costs its writer nothing) never sits in the worker's memory whole."""
    digest, total = hashlib.sha256(), 0
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return total, digest.hexdigest()
        total += len(chunk)
        if total > limit:
            raise TreeError("The workspace checkout is too large to copy.")
        digest.update(chunk)
        if out is not None:
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view) :]


def copy_out(top: Path, dest: Path, *, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES) -> Manifest:
    """Copy the checkout's files (not `.git`) into `dest`, an existing folder of ours; links stay links."""
    manifest = Manifest()
    root_fd = _open_top(top)
    try:
        _copy_dir(root_fd, dest, PurePosixPath(), manifest, max_files, max_bytes)
    finally:
        os.close(root_fd)
    return manifest


def _copy_dir(dir_fd: int, dest: Path, rel: PurePosixPath, manifest: Manifest, max_files: int, max_bytes: int) -> None:
    for name in sorted(os.listdir(dir_fd)):
        if name == ".git":
            continue
        if len(manifest.entries) >= max_files:
            raise TreeError(f"The workspace checkout has more than {max_files} files.")
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed while we walked
        path = rel / name
        target = dest / name
        if stat.S_ISLNK(info.st_mode):
            link = os.readlink(name, dir_fd=dir_fd)
            os.symlink(link, target)
            manifest.entries[str(path)] = ("l", link)
        elif stat.S_ISDIR(info.st_mode):
            try:
                fd = os.open(name, _DIR, dir_fd=dir_fd)
            except OSError:
                continue  # swapped for a link or removed meanwhile: not followed
            try:
                target.mkdir(mode=0o700)
                _copy_dir(fd, target, path, manifest, max_files, max_bytes)
            finally:
                os.close(fd)
        elif stat.S_ISREG(info.st_mode):
            try:
                fd = os.open(name, _FILE, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    continue
                executable = bool(os.fstat(fd).st_mode & 0o100)
                out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                try:
                    size, sha = _stream_fd(fd, max_bytes - manifest.bytes, out)
                finally:
                    os.close(out)
            finally:
                os.close(fd)
            manifest.bytes += size
            os.chmod(target, 0o700 if executable else 0o600)
            manifest.entries[str(path)] = ("f", sha, executable)


def read_head(top: Path) -> str | None:
    """The checkout's HEAD commit, read from `.git` files (never by running git there); None if unclear."""
    try:
        fd = _open_top(top)
    except TreeError:
        return None
    try:
        git_fd = os.open(".git", _DIR, dir_fd=fd)
    except OSError:
        os.close(fd)
        return None
    try:
        head = _small_file(git_fd, ["HEAD"]).strip()
        if head.startswith("ref:"):
            ref = head[4:].strip()
            if not REF_RE.match(ref) or ".." in ref or "//" in ref:
                return None
            value = _small_file(git_fd, ref.split("/")).strip()
            if not value:
                for line in _small_file(git_fd, ["packed-refs"]).splitlines():
                    sha, _, name = line.partition(" ")
                    if name.strip() == ref:
                        value = sha
                        break
            head = value
        return head if SHA_RE.match(head) else None
    finally:
        os.close(git_fd)
        os.close(fd)


def _small_file(dir_fd: int, parts: list[str]) -> str:
    """A small text file under dir_fd, each step O_NOFOLLOW; "" when absent or odd."""
    fds: list[int] = []
    try:
        current = dir_fd
        for part in parts[:-1]:
            current = os.open(part, _DIR, dir_fd=current)
            fds.append(current)
        fd = os.open(parts[-1], _FILE, dir_fd=current)
        fds.append(fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, 1 << 20).decode("utf-8", "replace")
    except OSError:
        return ""
    finally:
        for f in fds:
            os.close(f)


# --- writing back ----------------------------------------------------------------------------------


@dataclass
class Change:
    """One path to set in the checkout: kind "f" (data, executable), "l" (link target in `data`), or "d" (delete)."""

    path: str
    kind: str
    data: bytes = b""
    executable: bool = False


def _current(dir_fd: int, name: str) -> tuple | None:
    """The manifest entry the checkout has now for `name` in dir_fd (None when absent)."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return ("l", os.readlink(name, dir_fd=dir_fd))
    if not stat.S_ISREG(info.st_mode):
        return ("other",)
    fd = os.open(name, _FILE, dir_fd=dir_fd)
    try:
        return ("f", _stream_fd(fd, MAX_BYTES)[1], bool(os.fstat(fd).st_mode & 0o100))
    finally:
        os.close(fd)


def _parent_fd(root_fd: int, parts: tuple[str, ...], *, create: bool, owner: tuple[int, int]) -> int | None:
    """An fd of the folder holding the path's last part (made, owned like the checkout, when `create`)."""
    current = os.dup(root_fd)
    for part in parts[:-1]:
        try:
            nxt = os.open(part, _DIR, dir_fd=current)
        except FileNotFoundError:
            if not create:
                os.close(current)
                return None
            os.mkdir(part, 0o755, dir_fd=current)
            nxt = os.open(part, _DIR, dir_fd=current)
            os.fchmod(nxt, 0o755)
            _chown(nxt, owner)
        except OSError:
            os.close(current)
            raise TreeError(f"{'/'.join(parts)}: a folder on its way is a link or not a folder.") from None
        os.close(current)
        current = nxt
    return current


def _chown(fd: int, owner: tuple[int, int]) -> None:
    if os.geteuid() == 0:
        os.fchown(fd, *owner)


def _check_name(path: str) -> tuple[str, ...]:
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or any(p in ("", ".", "..", ".git") for p in parts):
        raise TreeError(f"{path!r} is not a path inside the checkout.")
    return parts


def write_back(top: Path, changes: list[Change], expected: Manifest) -> None:
    """Set each changed path in the checkout, but only if the checkout still holds what copy_out saw there
    (else nothing at all is written: TreeError). Files are written to a new name and renamed over (never through
    an existing inode or link), owned like the checkout itself."""
    root_fd = _open_top(top)
    try:
        info = os.fstat(root_fd)
        owner = (info.st_uid, info.st_gid)
        plan = [(c, _check_name(c.path)) for c in changes]
        # phase 1: everything is as we saw it (a file edited since the copy is never overwritten)
        for change, parts in plan:
            fd = _parent_fd(root_fd, parts, create=False, owner=owner)
            now = None if fd is None else _current(fd, parts[-1])
            if fd is not None:
                os.close(fd)
            if now != expected.entries.get(change.path):
                raise TreeError(f"{change.path} changed in the workspace while the result was being applied.")
        # phase 2: write
        for change, parts in plan:
            fd = _parent_fd(root_fd, parts, create=change.kind != "d", owner=owner)
            if fd is None:
                continue
            try:
                _set(fd, parts[-1], change, owner)
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)


def _set(dir_fd: int, name: str, change: Change, owner: tuple[int, int]) -> None:
    if change.kind == "d":
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        return
    temp = f".goldpath-apply-{uuid.uuid4().hex[:12]}"
    if change.kind == "l":
        os.symlink(change.data.decode("utf-8", "surrogateescape"), temp, dir_fd=dir_fd)
        if os.geteuid() == 0:
            os.chown(temp, *owner, dir_fd=dir_fd, follow_symlinks=False)
    else:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            view = memoryview(change.data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, 0o755 if change.executable else 0o644)
            _chown(fd, owner)
        finally:
            os.close(fd)
    try:
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError:
        os.unlink(temp, dir_fd=dir_fd)
        raise TreeError(f"{change.path} could not be replaced (a folder is in its way).") from None
