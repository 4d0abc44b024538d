"""Tool runtimes: the pinned npm or PyPI package a tool version runs from, installed once per worker machine.

It is installed under `TOOLS_DIR/<tool slug>/<version>/` and bound read-only into sandboxes at /opt/goldpath/tool.

- `ensure_installed(version)` is idempotent and safe across processes: an exclusive flock per runtime (a sibling
  `.<version>.lock`) means one process installs while the others wait and then find it installed. An install
  goes into a temporary sibling and is renamed into place with its marker (`.goldpath-runtime.json`, holding the
  spec it came from) written last, so a half install never looks installed and a changed spec means reinstall.
- npm: `npm install --prefix DIR ... -- PACKAGE@VERSION`. Install scripts run (claude-code's postinstall copies
  its native binary over a stub; with --ignore-scripts the CLI does not start), so they run with an environment
  stripped of the worker's secrets. PyPI: a venv made by /usr/bin/python3 (the interpreter every sandbox sees;
  /usr is bound into it) and `pip install PACKAGE==VERSION`; its scripts' shebangs are rewritten to find the
  venv's python next to themselves, so they work at /opt/goldpath/tool as on the host.
- Files are world-readable (umask 022 for the installers, then a pass over the tree): a root worker's sandbox runs
  as a per-run uid that reads them through a bind mount (catalog.runners.spawn), while GOLDPATH_HOME stays 0700.
- The spec is stored data a platform engineer typed: it is checked again with the one grammar
  (services.tool_version_rules.clean_runtime) before any command runs, and reaches npm/pip after `--`.

Errors are `RuntimeInstallError` with a fixed, readable message (which package, registry or tool is missing);
installer output goes to the server log only.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .conf import goldpath_home, goldpath_settings
from .runners.sandbox_files import RUNTIME_MARKER as MARKER

if TYPE_CHECKING:
    from .models import ToolVersion

log = logging.getLogger(__name__)

PYTHON = "/usr/bin/python3"
INSTALL_TIMEOUT_S = 1800
KEEP_REPLACED_S = 24 * 3600  # a replaced runtime may still be mounted by a run in flight
SLUG_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?\Z")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,49}\Z")
# what the installers may see of the worker's environment (registry, proxy and CA settings; never its secrets)
ENV_KEEP = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "SSL_CERT_FILE"}
ENV_KEEP |= {"SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"}
ENV_KEEP |= {f"{p}_proxy" for p in ("http", "https", "no", "all")} | {
    f"{p}_PROXY" for p in ("HTTP", "HTTPS", "NO", "ALL")
}
ENV_PREFIXES = ("npm_config_", "NPM_CONFIG_", "PIP_")
NODE_HINT = "install Node.js (apt-get install nodejs npm)"
# a console script that finds the venv's python beside itself (pip's own long-shebang form, made relative)
RELOCATABLE_SHEBANG = b"#!/bin/sh\n'''exec' \"$(dirname -- \"$0\")/python3\" \"$0\" \"$@\"\n' '''\n"


class RuntimeInstallError(RuntimeError):
    """A runtime could not be installed; the message is meant for the user, as is."""


def spec_of(version: ToolVersion) -> dict[str, str]:
    """The version's runtime, checked with the catalog's own grammar ({} for a built-in tool)."""
    from .services.tool_version_rules import FieldError, clean_runtime

    try:
        return clean_runtime(version.runtime or {})
    except FieldError as exc:
        raise RuntimeInstallError(f"The runtime of {_label(version)} is not valid: {' '.join(exc.messages)}") from exc


def describe(spec: dict[str, str]) -> str:
    """`@anthropic-ai/claude-code@2.1.332 (npm)`."""
    joiner = "==" if spec["kind"] == "pypi" else "@"
    return f"{spec['package']}{joiner}{spec['version']} ({spec['kind']})"


def tools_dir() -> Path:
    configured = goldpath_settings.TOOLS_DIR
    return Path(configured) if configured else goldpath_home() / "tools"


def runtime_dir(version: ToolVersion) -> Path:
    """`<TOOLS_DIR>/<tool slug>/<version>/` (both names checked: they become path components)."""
    slug, name = version.tool.slug, version.version
    if not SLUG_RE.match(slug) or not VERSION_RE.match(name):
        raise RuntimeInstallError(f"{slug[:60]!r}@{name[:60]!r} cannot name a runtime folder.")
    return tools_dir() / slug / name


def read_marker(path: Path) -> dict[str, str]:
    """The spec a runtime folder was installed from ({} when it holds none: not, or not completely, installed)."""
    try:
        data = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return {k: data[k] for k in ("kind", "package", "version") if isinstance(data.get(k), str)}


def is_installed(version: ToolVersion) -> bool:
    spec = spec_of(version)
    return bool(spec) and read_marker(runtime_dir(version)) == spec


def ensure_installed(version: ToolVersion, *, progress: Callable[[str], None] | None = None) -> Path | None:
    """The version's runtime folder, installed first when needed; None for a built-in tool."""
    say = progress or (lambda line: None)
    spec = spec_of(version)
    if not spec:
        return None
    target = runtime_dir(version)
    if read_marker(target) == spec and _shared(target):
        return target
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(target, lambda: say(f"waiting for another install of {describe(spec)}")):
        if read_marker(target) == spec:
            if not _shared(target):
                share_tree(target)  # made owner-only since (GOLDPATH_HOME's tightening): readable again
            return target
        say(f"installing {describe(spec)}")
        started = time.monotonic()
        _install(spec, target)
        say(f"installed {describe(spec)} in {time.monotonic() - started:.1f} s")
    return target


# -- locking and publishing ---------------------------------------------------------------------------------


@contextmanager
def _locked(target: Path, on_wait: Callable[[], None]) -> Iterator[None]:
    fd = os.open(target.parent / f".{target.name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _install(spec: dict[str, str], target: Path) -> None:
    """Install into a temporary sibling, then publish it under the runtime's name (the lock is held)."""
    parent = target.parent
    for stale in parent.glob(f".{target.name}.tmp-*"):  # left by an install that died: nobody else is installing
        shutil.rmtree(stale, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
    try:
        (_install_npm if spec["kind"] == "npm" else _install_pypi)(spec, stage)
        share_tree(stage)
        (stage / MARKER).write_text(json.dumps(spec, sort_keys=True) + "\n")
        os.chmod(stage / MARKER, 0o644)
        _replace(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _replace(stage: Path, target: Path) -> None:
    """Rename the new install into place; an older one (another spec) is set aside for a day, not deleted: a run
    in flight may still have it mounted."""
    now = time.time()
    for old in target.parent.glob(f".{target.name}.old-*"):
        try:
            if now - old.stat().st_mtime > KEEP_REPLACED_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    if target.exists() or target.is_symlink():
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rename(target, aside / "runtime")
        os.utime(aside)
    os.rename(stage, target)


def _shared(path: Path) -> bool:
    try:
        return stat.S_IMODE(path.stat().st_mode) & 0o055 == 0o055
    except OSError:
        return False


def share_tree(top: Path) -> None:
    """Folders 0755 and files a+r (a+x where the owner may execute): the sandbox uid reads them, the root
    worker's home (0700) keeps everyone else out. Links are left alone, never followed."""
    for dirpath, _dirs, files in os.walk(top):
        os.chmod(dirpath, stat.S_IMODE(os.lstat(dirpath).st_mode) | 0o755)
        for name in files:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                extra = 0o444 | (0o111 if mode & stat.S_IXUSR else 0)
                if stat.S_IMODE(mode) & extra != extra:
                    os.chmod(path, stat.S_IMODE(mode) | extra)


# -- the installers -------------------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    """The worker's environment without its secrets: install scripts run with it."""
    env = {k: v for k, v in os.environ.items() if k in ENV_KEEP or k.startswith(ENV_PREFIXES)}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    home = env.get("HOME", "")
    if not home or not os.access(home, os.W_OK):  # npm and pip keep their caches there
        cache = tools_dir() / ".home"
        cache.mkdir(mode=0o700, parents=True, exist_ok=True)
        env["HOME"] = str(cache)
    return env


def _run(argv: list[str], what: str, env: dict[str, str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=env,
            umask=0o022,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeInstallError(f"{what} took longer than {INSTALL_TIMEOUT_S // 60} minutes; gave up.") from exc
    except OSError as exc:
        raise RuntimeInstallError(f"{what} could not start ({exc.strerror}).") from exc
    output = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    if proc.returncode:
        log.warning("%s failed (exit %s):\n%s", what, proc.returncode, output[-20000:])
    return proc.returncode, output


def _install_npm(spec: dict[str, str], stage: Path) -> None:
    env = _env()
    npm = shutil.which(str(goldpath_settings.NPM), path=env["PATH"])
    if npm is None or shutil.which("node", path=env["PATH"]) is None:
        raise RuntimeInstallError(f"Node.js and npm are needed to install {describe(spec)}: {NODE_HINT}.")
    package, version = spec["package"], spec["version"]
    argv = [npm, "install", "--prefix", str(stage), "--no-audit", "--no-fund", "--omit=dev", "--save-exact"]
    argv += ["--no-update-notifier", "--no-progress", "--", f"{package}@{version}"]
    code, output = _run(argv, f"npm install {package}@{version}", env)
    if code == 0:
        if not (stage / "node_modules" / package).is_dir():
            raise RuntimeInstallError(f"npm reported success but {package} is not in the install; see the logs.")
        return
    codes = set(re.findall(r"npm (?:error|ERR!) code (\w+)", output))
    if "E404" in codes:
        raise RuntimeInstallError(f"npm package {package} was not found in the registry.")
    if "ETARGET" in codes:
        raise RuntimeInstallError(f"npm package {package} has no version {version} in the registry.")
    unreachable = {"ENOTFOUND", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EAI_AGAIN", "ENETUNREACH"}
    if codes & unreachable or "EHOSTUNREACH" in output:
        reason = ", ".join(sorted(codes & unreachable)) or "EHOSTUNREACH"
        raise RuntimeInstallError(f"The npm registry could not be reached ({reason}) to install {package}@{version}.")
    detail = f" (npm error {', '.join(sorted(codes))})" if codes else f" (exit code {code})"
    raise RuntimeInstallError(f"npm could not install {package}@{version}{detail}; the worker's log has the details.")


def _install_pypi(spec: dict[str, str], stage: Path) -> None:
    env = _env()
    package, version = spec["package"], spec["version"]
    if not os.access(PYTHON, os.X_OK):
        raise RuntimeInstallError(f"{PYTHON} is needed to install {describe(spec)}: install python3 (apt-get).")
    code, output = _run([PYTHON, "-m", "venv", str(stage / "venv")], "creating a virtual environment", env)
    if code:
        hint = " (apt-get install python3-venv)" if "ensurepip" in output else ""
        raise RuntimeInstallError(f"{PYTHON} could not create a virtual environment{hint}.")
    python = str(stage / "venv" / "bin" / "python3")
    argv = [python, "-m", "pip", "install", "--no-input", "--disable-pip-version-check", "--no-warn-script-location"]
    code, output = _run([*argv, "--", f"{package}=={version}"], f"pip install {package}=={version}", env)
    if code:
        raise RuntimeInstallError(_pip_failure(package, version, output))
    _relocate_scripts(stage / "venv")


def _pip_failure(package: str, version: str, output: str) -> str:
    unreachable = any(
        hint in output
        for hint in ("NewConnectionError", "Max retries exceeded", "Could not fetch URL", "ConnectTimeout", "SSLError")
    )
    found = re.search(r"\(from versions: ([^)]*)\)", output)
    if found and found.group(1).strip() not in ("", "none"):
        return f"PyPI package {package} has no version {version} in the package index."
    if unreachable:
        return f"The package index could not be reached to install {package}=={version}."
    if found or "No matching distribution found" in output:
        return f"PyPI package {package} was not found in the package index."
    return f"pip could not install {package}=={version}; the worker's log has the details."


def _relocate_scripts(venv: Path) -> None:
    """Console scripts name the venv's python by its install-time path: make them find it beside themselves."""
    bindir = venv / "bin"
    old = str(bindir).encode()
    for entry in bindir.iterdir():
        if entry.is_symlink() or not entry.is_file():
            continue
        with open(entry, "rb") as fh:
            head = fh.read(2048)
            if not head.startswith(b"#!") or old not in head:
                continue
            rest = head + fh.read()
        lines = rest.split(b"\n")
        # `#!/path/python` (one line) or pip's `#!/bin/sh` + `'''exec' /path/python "$0" "$@"` + `' '''` form
        skip = 3 if lines[0] == b"#!/bin/sh" and lines[1].startswith(b"'''exec'") else 1
        mode = stat.S_IMODE(entry.stat().st_mode)
        entry.write_bytes(RELOCATABLE_SHEBANG + b"\n".join(lines[skip:]))
        os.chmod(entry, mode)


def _label(version: ToolVersion) -> str:
    return f"{version.tool.slug}@{version.version}"
