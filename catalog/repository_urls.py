"""Which repository locations Goldpath will clone from, checked when registered and again at use.

The developer and everything they name are hostile (DESIGN.md): a free URL would let them read other
teams' checkouts on the worker, reach services on the worker's loopback or private network, or run
commands through git's remote helpers. So only these are accepted:

- an absolute local path under `GOLDPATH_HOME/repositories` or a folder in `LOCAL_REPOSITORY_ROOTS`
  (symlinks resolved for the check) that holds a git repository;
- `https://host/path` or `ssh://[user@]host[:port]/path` with no password (credentials are stored
  apart), whose host is a DNS name or a public IP address, unless the operator lists it in
  `ALLOWED_GIT_HOSTS`.

`check_at_use` repeats the checks (settings may have changed) and resolves the host name, refusing
it if any address is not public (DNS that points at 127.0.0.1). Messages are safe to show users.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass

from .conf import goldpath_home, goldpath_settings
from .numbers import small_int

MAX_URL_LENGTH = 1000
SCHEMES = {"https": 443, "ssh": 22}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_TRANSPORT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_USER_RE = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]{0,63}$")
_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_NUMERIC_LABEL_RE = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_CANONICAL_IPV4_RE = re.compile(r"^(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){3}$")
_PATH_BAD_RE = re.compile(r"[\s\\\x00-\x1f\x7f?#]")
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))

SCP_LIKE = "Write the address as ssh://user@host/path; the scp-like host:path form is not accepted."
NO_CREDENTIALS = "Put the credential in the credential field, not in the URL."
PRIVATE_HOST = (
    "This host is a loopback, private, link-local or reserved address; "
    "Goldpath clones only from public hosts unless an operator allows the host."
)


@dataclass(frozen=True)
class RemoteURL:
    scheme: str
    user: str
    host: str  # lower case; IPv6 without brackets
    port: int | None
    path: str

    @property
    def effective_port(self) -> int:
        return self.port or SCHEMES[self.scheme]

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{user}{host}{port}{self.path}"


# --- settings ---------------------------------------------------------------------------------


def _setting(name: str) -> str:
    """The GOLDPATH setting, or the GOLDPATH_<name> environment variable when the setting is empty."""
    value = getattr(goldpath_settings, name) or os.environ.get(f"GOLDPATH_{name}", "")
    return str(value or "")


def local_roots() -> list[str]:
    """Resolved folders local repositories may live under."""
    roots: list[str] = []
    roots.append(os.path.join(str(goldpath_home()), "repositories"))
    roots += [r.strip() for r in _setting("LOCAL_REPOSITORY_ROOTS").split(os.pathsep)]
    return list(dict.fromkeys(os.path.realpath(r) for r in roots if r and os.path.isabs(r)))


def allowed_hosts() -> set[tuple[str, int | None]]:
    """(host, port or None for any port) pairs from ALLOWED_GIT_HOSTS.

    Entries are separated by commas, whitespace or os.pathsep; with os.pathsep being ":" on POSIX, a run
    of digits after a ":" is read as the previous host's port (`a.example:8443:b.example`).
    """
    result: set[tuple[str, int | None]] = set()
    for chunk in re.split(r"[,\s;]+", _setting("ALLOWED_GIT_HOSTS").lower()):
        pending: str | None = None
        for token in re.findall(r"\[[^\]]*\]|[^:]+", chunk):
            if small_int(token, max_digits=5) is not None and pending is not None:
                result.add((pending, int(token)))
                pending = None
                continue
            if pending is not None:
                result.add((pending, None))
            pending = _normalize_allowed(token)
        if pending is not None:
            result.add((pending, None))
    return result


def _normalize_allowed(token: str) -> str | None:
    host = token.strip().strip("[]").rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host or None


def _host_allowed(remote: RemoteURL) -> bool:
    allowed = allowed_hosts()
    return (remote.host, None) in allowed or (remote.host, remote.effective_port) in allowed


# --- addresses --------------------------------------------------------------------------------


def address_forbidden(ip: IPAddress) -> bool:
    """True for loopback, private, link-local, multicast, unspecified, reserved or otherwise non-global
    addresses, including IPv4 embedded in IPv6 (mapped, 6to4, NAT64)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour]
        if any(ip in net for net in _NAT64):
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.teredo:
            embedded.extend(ip.teredo)
        if any(e is not None and address_forbidden(e) for e in embedded):
            return True
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
        or not ip.is_global
    )


def _host_address(host: str) -> IPAddress | None:
    """The IP address a host literal names, or None for a DNS name. Raises ValueError for the numeric
    IPv4 spellings that git, curl and the C library read differently (2130706433, 0x7f.1, 127.1, 0177...)."""
    if ":" in host:
        return ipaddress.IPv6Address(host)
    labels = host.split(".")
    if _NUMERIC_LABEL_RE.match(labels[-1]):
        if not _CANONICAL_IPV4_RE.match(host):
            raise ValueError("Write an IPv4 address as four decimal numbers (a.b.c.d), or use a host name.")
        return ipaddress.IPv4Address(host)
    return None


# --- parsing ----------------------------------------------------------------------------------


def _parse_remote(url: str) -> RemoteURL:
    if _TRANSPORT_RE.match(url):
        raise ValueError("Remote helpers (transport::address) are not accepted; use https:// or ssh://.")
    match = _SCHEME_RE.match(url)
    if match is None:
        if ":" in url.split("/", 1)[0]:
            raise ValueError(SCP_LIKE)
        raise ValueError("Give a https:// or ssh:// clone URL, or an absolute path to a local repository.")
    scheme = match.group(1).lower()
    if scheme not in SCHEMES:
        raise ValueError(f"The {scheme}:// scheme is not accepted; use https:// or ssh://.")
    if any(ord(c) > 126 or ord(c) <= 32 for c in url) or "\\" in url:
        raise ValueError("The URL holds spaces, control or non-ASCII characters; encode the path.")
    rest = url[match.end() :]
    authority, slash, path = rest.partition("/")
    path = slash + path
    if "?" in authority or "#" in authority or "%" in authority:
        raise ValueError("The host part of the URL holds characters that are not allowed (?, # or %).")
    user = ""
    if "@" in authority:
        userinfo, _, authority = authority.rpartition("@")
        if scheme == "https" or ":" in userinfo or "@" in userinfo:
            raise ValueError(NO_CREDENTIALS)
        if not _USER_RE.match(userinfo):
            raise ValueError("The user name in the URL is not valid.")
        user = userinfo
    host, port = _split_host_port(authority)
    if not path.strip("/") or _PATH_BAD_RE.search(path):
        raise ValueError("Give the repository path after the host (no query, fragment or spaces).")
    return RemoteURL(scheme=scheme, user=user, host=host, port=port, path=path)


def _split_host_port(authority: str) -> tuple[str, int | None]:
    port_text: str | None = None
    if authority.startswith("["):
        host, sep, tail = authority[1:].partition("]")
        if not sep or (tail and not tail.startswith(":")):
            raise ValueError("The IPv6 address in the URL is not valid.")
        port_text = tail[1:] if tail else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise ValueError("The IPv6 address in the URL is not valid.") from exc
        host = str(ipaddress.IPv6Address(host))
    else:
        host, sep, port_text = authority.partition(":")
        port_text = port_text if sep else None
        host = host.lower()
        if host.endswith(".") or len(host) > 253 or not all(_LABEL_RE.match(label) for label in host.split(".")):
            raise ValueError("Give a valid host name in the URL (letters, digits, hyphens and dots).")
    port = None
    if port_text is not None:
        port = small_int(port_text, max_digits=5)
        if port is None or not 0 < port < 65536:
            raise ValueError("The port in the URL is not valid.")
    return host, port


def _check_remote(remote: RemoteURL) -> IPAddress | None:
    """Refuse local-only hosts (unless allowed); return the host's literal address, if it is one."""
    address = _host_address(remote.host)
    if _host_allowed(remote):
        return address
    if remote.host == "localhost" or remote.host.endswith(".localhost"):
        raise ValueError(PRIVATE_HOST)
    if address is not None and address_forbidden(address):
        raise ValueError(PRIVATE_HOST)
    return address


# --- local paths ------------------------------------------------------------------------------


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _check_local(url: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValueError("The path holds control characters.")
    if ".." in url.split("/"):
        raise ValueError("Give the path without '..' parts.")
    normalized = os.path.normpath(url)
    if normalized.startswith("//"):
        normalized = "/" + normalized.lstrip("/")
    roots = local_roots()
    real = os.path.realpath(normalized)

    def inside(p: str) -> bool:
        return any(_within(p, root) for root in roots)

    if not inside(real):
        where = ", ".join(roots) or "no folder (none is configured)"
        raise ValueError(f"Local repositories must live under {where}.")
    dot_git = os.path.join(real, ".git")
    if os.path.lexists(dot_git):
        if not os.path.isdir(dot_git):
            raise ValueError("This is a linked worktree or submodule checkout; register the main repository.")
        git_dir = os.path.realpath(dot_git)
    elif os.path.isfile(os.path.join(real, "HEAD")) and os.path.isdir(os.path.join(real, "objects")):
        git_dir = real
    else:
        raise ValueError("No git repository at this path.")
    objects = os.path.realpath(os.path.join(git_dir, "objects"))
    if not (inside(git_dir) and inside(objects) and os.path.isfile(os.path.join(git_dir, "HEAD"))):
        raise ValueError("No git repository at this path (its git folder lies outside the allowed folders).")
    if os.path.lexists(os.path.join(git_dir, "commondir")) or os.path.lexists(
        os.path.join(objects, "info", "alternates")
    ):
        raise ValueError("Repositories that borrow objects from another repository (alternates) are not accepted.")
    return normalized


# --- public API -------------------------------------------------------------------------------


def validate_url(url: str) -> str:
    """The normalized clone URL or local path; ValueError with a user-facing message if not accepted."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("Give a https:// or ssh:// clone URL, or an absolute path to a local repository.")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"Keep the URL under {MAX_URL_LENGTH} characters.")
    if url.startswith("/"):
        return _check_local(url)
    remote = _parse_remote(url)
    _check_remote(remote)
    return str(remote)


def host_and_port(url: str) -> tuple[str, int]:
    """(host, port) of a remote repository URL that validate_url accepted."""
    remote = _parse_remote(url.strip())
    return remote.host, remote.effective_port


def check_at_use(url: str) -> list[str]:
    """Everything validate_url checks, with today's settings, plus: every address a remote host name
    resolves to must be public (unless the host is allowed). Call it right before cloning or pushing.

    Returns the addresses checked for a host name (empty for a path, an IP literal or an allowed host), so the
    caller can make git connect to exactly those (DNS may answer differently a moment later)."""
    validate_url(url)
    url = url.strip()
    if url.startswith("/"):
        return []
    remote = _parse_remote(url)
    if _check_remote(remote) is not None or _host_allowed(remote):
        return []
    try:
        infos = socket.getaddrinfo(remote.host, remote.effective_port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ValueError("The repository host cannot be resolved.") from exc
    if not infos:
        raise ValueError("The repository host cannot be resolved.")
    checked: list[str] = []
    for info in infos:
        try:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        except ValueError as exc:
            raise ValueError("The repository host resolves to an address that is not valid.") from exc
        if address_forbidden(address):
            raise ValueError(PRIVATE_HOST)
        checked.append(str(address))
    return sorted(set(checked), key=checked.index)
