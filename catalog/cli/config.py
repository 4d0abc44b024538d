"""Where the CLI keeps its sign-in: `$XDG_CONFIG_HOME/goldpath/config.json` (0600, in a 0700 folder).

GOLDPATH_URL and GOLDPATH_TOKEN override what is stored, so scripts and CI need no config file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CliError

URL_ENV = "GOLDPATH_URL"
TOKEN_ENV = "GOLDPATH_TOKEN"


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "goldpath"


def config_path() -> Path:
    return config_dir() / "config.json"


def load() -> dict[str, Any]:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CliError(f"Cannot read {path}: {exc}. Remove it and sign in again with `goldpath login`.") from exc
    return data if isinstance(data, dict) else {}


def save(data: dict[str, Any]) -> Path:
    """Write the whole config atomically; the file is 0600 from its first byte (it holds a token)."""
    folder = config_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config-", dir=folder)  # mkstemp creates the file 0600
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, config_path())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return config_path()


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CliError(f"{url!r} is not an http(s) URL: give the portal's address, e.g. https://goldpath.example.com")
    if url.endswith("/api/v1"):
        url = url[: -len("/api/v1")]
    return url


@dataclass(frozen=True)
class Session:
    url: str
    token: str
    username: str | None
    token_from_env: bool


def current(*, need_token: bool = True) -> Session:
    """The portal and token to use: the environment first, then the stored sign-in."""
    stored = load()
    raw_url = os.environ.get(URL_ENV) or stored.get("url") or ""
    if not raw_url:
        raise CliError(f"No portal configured: run `goldpath login --url URL` or set {URL_ENV}.")
    url = normalize_url(raw_url)
    env_token = os.environ.get(TOKEN_ENV)
    # the stored token (and username) belong to the portal that issued them: never sent to another one
    same_portal = bool(stored.get("url")) and normalize_url(stored["url"]) == url
    token = env_token or (stored.get("token") if same_portal else "") or ""
    if need_token and not token:
        raise CliError(f"Not signed in to {url}: run `goldpath login --url {url}` or set {TOKEN_ENV}.")
    username = None if env_token or not same_portal else stored.get("username")
    return Session(url=url, token=token, username=username, token_from_env=bool(env_token))
