"""Install and run the test OpenID Connect provider (tests/sso/provider: panva's oidc-provider from npm).

The npm install goes into a cache folder once per package-lock (idempotent and safe across processes: an flock,
an install into a temporary sibling renamed into place, a marker written last), like catalog.runtimes does for
tool runtimes. Each run gets its own folder holding provider.js and a link to the cached node_modules.

For a newcomer (see the SSO notes): `.venv/bin/python -m tests.sso.oidc_provider` installs it and runs it in the
foreground on 127.0.0.1:9000 with tests/sso/provider/users.json, printing the settings to give the portal.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

SOURCE = Path(__file__).resolve().parent / "provider"
CI_CACHE = Path("/var/cache/goldpath-ci/oidc-provider")
CLIENT_ID = "goldpath"
CLIENT_SECRET = "goldpath-test-secret"
NPM_TIMEOUT_S = 600


def cache_root() -> Path:
    """GOLDPATH_OIDC_PROVIDER_DIR, else the CI cache when writable, else one under the user's cache folder."""
    configured = os.environ.get("GOLDPATH_OIDC_PROVIDER_DIR")
    if configured:
        return Path(configured)
    try:
        CI_CACHE.mkdir(parents=True, exist_ok=True)
        if os.access(CI_CACHE, os.W_OK):
            return CI_CACHE
    except OSError:
        pass
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "goldpath" / "oidc-provider"


def _spec_digest() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((SOURCE / name).read_bytes())
    return digest.hexdigest()[:16]


def ensure_installed() -> Path:
    """The folder whose node_modules holds the pinned oidc-provider, installed on first use."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    target = root / _spec_digest()
    marker = target / ".installed"
    if marker.exists():
        return target
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise RuntimeError("The test OIDC provider needs Node.js and npm (apt-get install nodejs npm).")
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return target
        staging = Path(tempfile.mkdtemp(dir=root, prefix=".install-"))
        try:
            for name in ("package.json", "package-lock.json"):
                shutil.copy2(SOURCE / name, staging / name)
            result = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
                cwd=staging,
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT_S,
            )
            if result.returncode != 0:
                raise RuntimeError(f"npm ci of the test OIDC provider failed:\n{result.stdout}\n{result.stderr}")
            (staging / ".installed").write_text(_spec_digest())
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return target


@dataclass
class ProviderProcess:
    issuer: str
    proc: subprocess.Popen
    folder: Path
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET

    def log(self) -> str:
        return (self.folder / "provider.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_provider(
    *, users_file: Path, redirect_uris: list[str], port: int = 0, timeout: float = 30.0
) -> ProviderProcess:
    """Start `node provider.js` on 127.0.0.1 and wait until its discovery document answers."""
    installed = ensure_installed()
    folder = Path(tempfile.mkdtemp(prefix="goldpath-oidc-provider-"))
    shutil.copy2(SOURCE / "provider.js", folder / "provider.js")
    (folder / "package.json").write_text('{"type": "module", "private": true}\n')
    (folder / "node_modules").symlink_to(installed / "node_modules", target_is_directory=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "USERS_FILE": str(users_file),
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "REDIRECT_URIS": ",".join(redirect_uris),
    }
    log = open(folder / "provider.log", "w")  # noqa: SIM115 (the process owns it)
    proc = subprocess.Popen(
        ["node", str(folder / "provider.js")],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    provider = ProviderProcess(issuer="", proc=proc, folder=folder)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the test OIDC provider exited:\n{provider.log()}")
        issuer = next((line.split(" ", 1)[1] for line in provider.log().splitlines() if line.startswith("ISSUER ")), "")
        if issuer:
            provider.issuer = issuer.strip()
            try:
                if requests.get(f"{provider.issuer}/.well-known/openid-configuration", timeout=2).ok:
                    return provider
            except requests.RequestException:
                pass
        time.sleep(0.1)
    provider.stop()
    raise RuntimeError(f"the test OIDC provider did not start in {timeout}s:\n{provider.log()}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run Goldpath's test OpenID Connect provider in the foreground.")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--users", type=Path, default=SOURCE / "users.json", help="users, passwords and groups")
    parser.add_argument(
        "--portal",
        action="append",
        default=[],
        help="the portal's origin (repeatable; default http://localhost:8000 and http://127.0.0.1:8000)",
    )
    args = parser.parse_args()
    origins = args.portal or ["http://localhost:8000", "http://127.0.0.1:8000"]
    provider = start_provider(
        users_file=args.users.resolve(),
        redirect_uris=[f"{o.rstrip('/')}/sso/callback/" for o in origins],
        port=args.port,
    )
    print(f"Test OIDC provider at {provider.issuer} (users: {args.users}). Start the portal with:\n")
    print(f"  GOLDPATH_OIDC_ISSUER={provider.issuer} GOLDPATH_OIDC_CLIENT_ID={CLIENT_ID} \\")
    print(f"  GOLDPATH_OIDC_CLIENT_SECRET={CLIENT_SECRET} GOLDPATH_OIDC_NAME='Test IdP' make run\n")
    print("Press Ctrl-C to stop.", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the provider on SIGTERM too
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    try:
        while provider.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        provider.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
