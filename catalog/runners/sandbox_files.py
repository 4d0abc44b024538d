"""The files a sandbox is made of, outside GOLDPATH_HOME: root, private run folders and the shared image.

The files a sandbox is made of, outside GOLDPATH_HOME: the sandbox root with each run's private folder, the
host uid a root worker gives a run, and the shared read-only image (its /etc and /opt/goldpath/lib)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import stat
import tempfile
from pathlib import Path


class SandboxUnavailable(RuntimeError):
    """bwrap is missing and the operator did not allow unsandboxed runs."""


INSIDE_UID = 1000  # the agent's uid and gid inside the sandbox ("agent" in its /etc/passwd)
RUNTIME_MARKER = ".goldpath-runtime.json"  # written last into an installed tool runtime (catalog.runtimes)
WORKSPACE_AGENT = Path(__file__).resolve().parent.parent / "workspace_agent" / "agent.py"
UID_BASE, UID_SPAN = 2_000_000_000, 1_000_000  # host uids a root worker gives its sandboxes (one per run)
# Host files a sandbox sees under /etc, read-only: what dynamic linking, TLS and `/usr/bin` alternatives need.
ETC_SHARED = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "localtime",
    "nsswitch.conf",
    "protocols",
    "services",
    "mime.types",
    "os-release",
)
ETC_GENERATED = {
    "passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\nagent:x:{INSIDE_UID}:{INSIDE_UID}:agent:/tmp:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "group": f"root:x:0:\nagent:x:{INSIDE_UID}:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1 localhost\n::1 localhost\n",
    "resolv.conf": "# no DNS in a Goldpath sandbox: HTTP(S) goes through the proxy in HTTPS_PROXY\n",
    "hostname": "sandbox\n",
}


def is_root() -> bool:
    return os.geteuid() == 0


def sandbox_uid() -> int:
    """A host uid for one run's sandboxes when the worker is root (unused by anything else on the host)."""
    return UID_BASE + random.randrange(UID_SPAN)


def sandbox_root(configured: str | os.PathLike[str] | None = None) -> Path:
    """Where runs keep their copies and scratch dirs: outside GOLDPATH_HOME (0700), reachable by sandbox uids.

    The folder is this worker's (0711: others may pass through to the one run dir they own, not list it);
    one that exists with another owner, or as a link, is refused (it could be planted in a shared /var/tmp).
    """
    path = Path(configured or os.environ.get("GOLDPATH_SANDBOX_ROOT") or f"/var/tmp/goldpath-sandboxes-{os.geteuid()}")
    try:
        path.mkdir(mode=0o711, parents=True)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise SandboxUnavailable(f"{path} is not a folder of this worker's user; set GOLDPATH_SANDBOX_ROOT")
    if stat.S_IMODE(info.st_mode) != 0o711:
        os.chmod(path, 0o711)
    return path


def private_dir(root: Path, prefix: str, uid: int | None) -> Path:
    """A new 0700 folder under `root`, owned by the sandbox uid when the worker is root."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    if uid is not None and is_root():
        os.chown(path, uid, uid)
    return path


def chown_tree(top: Path, uid: int) -> None:
    """Give a tree to the sandbox uid (links themselves, never their targets)."""
    for dirpath, dirnames, filenames in os.walk(top):
        os.lchown(dirpath, uid, uid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, uid)


_IMAGES: dict[tuple[str, str], Path] = {}


def _image_key() -> str:
    """What the shared read-only image is made of: our files' content, the generated /etc, the host's /etc."""
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256(json.dumps(ETC_GENERATED, sort_keys=True).encode())
    for path in sorted((here.parent / "demo_agent").glob("*.py")) + [here / "forwarder.py", WORKSPACE_AGENT]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for name in ETC_SHARED:
        try:
            info = os.lstat(f"/etc/{name}")
            digest.update(f"{name}:{info.st_mtime_ns}:{info.st_size}".encode())
        except OSError:
            pass
    return digest.hexdigest()[:16]


def sandbox_image(root: Path) -> Path:
    """The read-only files every sandbox of this worker sees: its /etc and /opt/goldpath/lib (the demo agent and
    the forwarder). Built once per content (staged, then renamed into place), bound read-only: no copy per run."""
    cache = (str(root), "")
    found = _IMAGES.get(cache)
    if found is not None and found.is_dir():
        return found
    path = root / f"image-{_image_key()}"
    if not path.is_dir():
        stage = Path(tempfile.mkdtemp(prefix=".image-", dir=root))
        here = Path(__file__).resolve().parent
        lib = stage / "lib"
        shutil.copytree(
            here.parent / "demo_agent", lib / "catalog" / "demo_agent", ignore=shutil.ignore_patterns("__pycache__")
        )
        (lib / "catalog" / "__init__.py").write_text("")
        shutil.copyfile(here / "forwarder.py", lib / "goldpath_forwarder.py")
        shutil.copyfile(WORKSPACE_AGENT, lib / "goldpath_workspace_agent.py")
        etc = stage / "etc"
        etc.mkdir()
        for name in ETC_SHARED:
            source = Path("/etc") / name
            if source.is_symlink() or source.is_file():
                shutil.copy2(source, etc / name, follow_symlinks=not source.is_symlink())
            elif source.is_dir():
                shutil.copytree(source, etc / name, symlinks=True, ignore=shutil.ignore_patterns("private"))
        for name, text in ETC_GENERATED.items():
            (etc / name).write_text(text)
        _readable(stage)  # whatever the process umask: sandbox uids read it, bound read-only
        try:
            os.rename(stage, path)
        except OSError:  # another runner made it first: use theirs
            shutil.rmtree(stage, ignore_errors=True)
    _IMAGES[cache] = path
    return path


def _readable(top: Path) -> None:
    for dirpath, _dirs, files in os.walk(top):
        os.chmod(dirpath, 0o755)
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o644)


def short_socket_dir(runner_id: str) -> Path:
    """Where a runner's sockets go when its scratch dir's path is too long for AF_UNIX."""
    return Path(tempfile.gettempdir()) / f"gp-sock-{runner_id}"
