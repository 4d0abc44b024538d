"""The egress allow-list grammar and its decisions, shared by the proxy and the tool-version service.

A pattern is `host`, `*.suffix`, an IP literal (`[v6]` when it carries a port), each with an optional
`:port`. Without a port a pattern allows only the web ports 80 and 443: the proxy speaks HTTP, and an
allowed name must not become a way to reach SSH, SMTP or a database on that host unless someone wrote
that port down. `*.suffix` matches any name below suffix (not suffix itself) and never an IP literal.

A name allowed only through a wildcard may resolve to public addresses only: whoever controls DNS for
the suffix could otherwise point it at 127.0.0.1 or 10.x and reach the worker's Redis or PostgreSQL.
A pattern naming the host (or IP) exactly is taken at its word: a platform engineer who writes
`git.internal.example:8443` or `127.0.0.1:8080` means that address.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

WEB_PORTS = (80, 443)
MAX_PATTERNS = 50
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")  # no top-level domain looks like this

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BadAddress(ValueError):
    """A host, authority or pattern that is not in the grammar (the message says why, for a user)."""


def _ip(text: str) -> IPAddress | None:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    return None if getattr(addr, "scope_id", None) else addr


def normalise_host(text: str) -> str:
    """Lower-case name (one trailing dot dropped) or canonical IP text; BadAddress otherwise."""
    host = text.strip("[]") if text.startswith("[") and text.endswith("]") else text
    addr = _ip(host)
    if addr is not None:
        return str(addr)
    host = host.lower()
    host = host[:-1] if host.endswith(".") else host
    if len(host) > 253 or not _HOSTNAME.match(host):
        raise BadAddress("not a host name or IP address")
    if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):  # `127.1`, `2130706433`, `0x7f000001`: inet_aton forms
        raise BadAddress("not a host name or IP address")
    return host


def is_ip(host: str) -> bool:
    return _ip(host) is not None


def split_authority(text: str, *, port_required: bool = False) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]`, `[v6]:port` (a bare v6 literal only without a port)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise BadAddress("unclosed [ in the address")
        host, rest = text[1:end], text[end + 1 :]
        if _ip(host) is None or ":" not in host:
            raise BadAddress("[...] must hold an IPv6 address")
        if rest and not rest.startswith(":"):
            raise BadAddress("unexpected text after ]")
        port_text = rest[1:] if rest else None
    elif text.count(":") > 1:
        if _ip(text) is None:
            raise BadAddress("not a host name or IP address")
        host, port_text = text, None
    else:
        host, _, port_text = text.partition(":") if ":" in text else (text, "", None)
    if port_text is None:
        if port_required:
            raise BadAddress("a port is required")
        return normalise_host(host), None
    if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5 or not 1 <= int(port_text) <= 65535:
        raise BadAddress("the port must be a number from 1 to 65535")
    return normalise_host(host), int(port_text)


@dataclass(frozen=True)
class Pattern:
    host: str  # a normalised name or IP; for a wildcard, the suffix without "*."
    wildcard: bool
    port: int | None  # None: the web ports only

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return ("*." if self.wildcard else "") + host + (f":{self.port}" if self.port else "")

    def matches(self, host: str, port: int) -> bool:
        allowed_port = port == self.port if self.port else port in WEB_PORTS
        if not allowed_port:
            return False
        if self.wildcard:
            return not is_ip(host) and host.endswith("." + self.host)
        return host == self.host

    def permits_address(self, addr: IPAddress) -> bool:
        """Exact patterns reach any address; wildcards only globally routable unicast ones."""
        return not self.wildcard or is_public(addr)


def is_public(addr: IPAddress) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


def parse_pattern(text: str) -> Pattern:
    """One allow-list entry; BadAddress (with a user-facing reason) for anything else."""
    if not isinstance(text, str) or not text or text != text.strip() or any(c.isspace() for c in text):
        raise BadAddress("give a host name without spaces")
    if "://" in text or "/" in text or "@" in text or "?" in text or "#" in text:
        raise BadAddress("give a host (and optional :port) only, no scheme, path or user")
    wildcard = text.startswith("*.")
    rest = text[2:] if wildcard else text
    if "*" in rest:
        raise BadAddress("a wildcard is allowed only as a leading `*.`")
    host, port = split_authority(rest)
    if wildcard and is_ip(host):
        raise BadAddress("`*.` must be followed by a domain name, not an IP address")
    return Pattern(host=host, wildcard=wildcard, port=port)


def parse_patterns(values: list[str]) -> list[Pattern]:
    """Every entry of a stored allow-list that parses (a malformed one allows nothing)."""
    patterns = []
    for value in values:
        try:
            patterns.append(parse_pattern(value))
        except BadAddress:
            continue
    return patterns


def validate_patterns(values: object) -> tuple[list[str], list[str]]:
    """(canonical entries without duplicates, error messages) for user input: a list of strings."""
    if not isinstance(values, list):
        return [], ["Give a list of host patterns."]
    if len(values) > MAX_PATTERNS:
        return [], [f"At most {MAX_PATTERNS} host patterns."]
    canonical: list[str] = []
    errors: list[str] = []
    for i, value in enumerate(values, 1):
        try:
            text = str(parse_pattern(value))
        except BadAddress as exc:
            shown = repr(value[:80]) if isinstance(value, str) else "not a string"
            errors.append(f"Entry {i} ({shown}): {exc}.")
            continue
        if text not in canonical:
            canonical.append(text)
    return canonical, errors


def best_match(host: str, port: int, patterns: list[Pattern]) -> Pattern | None:
    """The pattern that allows host:port, an exact one before a wildcard (exact ones grant more)."""
    found = [p for p in patterns if p.matches(host, port)]
    return min(found, key=lambda p: p.wildcard) if found else None


def host_allowed(host: str, allowed_hosts: list[str], port: int = 443) -> bool:
    """Whether the allow-list names host:port (by name only: the address rule needs a resolution)."""
    try:
        host, _ = split_authority(host)
    except BadAddress:
        return False
    return best_match(host, port, parse_patterns(allowed_hosts)) is not None


def resolve_host(host: str, port: int) -> list[str]:
    """The host's addresses, in getaddrinfo's order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
