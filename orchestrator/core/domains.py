"""Domain patterns of ``network.allow`` / ``network.deny``: parse, refuse, match, compare.

Owns: the pattern language and its checks — which patterns are too broad to mean
anything (``*``, ``*.com``, ``*.co.uk``, ``*.github.io``), which host and port a pattern
admits, and whether one pattern admits only what another does (a user profile may
narrow an allow list, never widen it).
Does not own: resolving names or the addresses they resolve to (``netproxy``).

Forms: ``example.com`` (that name only), ``*.example.com`` (every name below it, not
``example.com`` itself), an IP literal (``192.0.2.7``, ``[2001:db8::1]``), each with an
optional ``:PORT`` or ``:*``. Without a port a pattern admits 80 and 443 only: naming a
web host must not open its SSH or SMTP port.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

DEFAULT_PORTS = (80, 443)
SYNTAX = "write example.com, *.example.com or an IP, optionally with :PORT or :*"
_DIGITS = re.compile(r"[0-9]{1,5}")  # ASCII only: str.isdigit() also admits "²"
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


class PatternError(ValueError):
    """A pattern that means nothing safe; the message says why and how to write it."""


@dataclass(frozen=True, slots=True)
class DomainPattern:
    text: str
    host: str  # normalised; for a wildcard, the suffix below which names match
    wildcard: bool
    ports: tuple[int, ...] | None  # None: any port

    def admits_host(self, host: str) -> bool:
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host

    def admits(self, host: str, port: int) -> bool:
        """``host`` must already be normalised (``normalise_host``)."""
        return self.admits_host(host) and (self.ports is None or port in self.ports)

    def covers(self, other: DomainPattern) -> bool:
        """True when everything ``other`` admits, this admits too."""
        if self.ports is not None and (other.ports is None or set(other.ports) - set(self.ports)):
            return False
        if self.wildcard:
            return other.host.endswith("." + self.host) or (
                other.wildcard and other.host == self.host
            )
        return not other.wildcard and other.host == self.host


def normalise_host(host: str) -> str:
    """Lower-case ASCII (IDNA) name without a trailing dot, or a canonical IP literal.

    Raises PatternError for what is neither: a proxy request naming such a host is
    refused rather than guessed at.
    """
    import ipaddress  # only when a host name is checked: start-up time

    host = host.strip().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if _numeric(host):
        # 127.1, 0x7f000001, 10.0.0.0x1: inet_aton (and so getaddrinfo) reads these as
        # addresses without asking DNS — an IP literal in disguise, never a name.
        raise PatternError(f"{host!r} is a numeric host that is not a plain IP address")
    try:
        # IDNA 2008 with UTS #46, as curl, browsers and libidn2 map names (faß.de is
        # xn--fa-hia.de there, not fass.de as Python's IDNA 2003 codec would say). An
        # ASCII name only needs lower case (and may hold the `_` DNS allows).
        ascii_name = host.lower() if host.isascii() else _idna(host)
    except UnicodeError as exc:  # idna.IDNAError is one
        raise PatternError(f"{host!r} is not a valid host name") from exc
    labels = ascii_name.split(".")
    if not ascii_name or not all(_LABEL.match(label) for label in labels):
        raise PatternError(f"{host!r} is not a valid host name")
    if labels[-1].isdigit():
        raise PatternError(f"{host!r} is a numeric host that is not a plain IP address")
    return ascii_name


def _idna(host: str) -> str:
    import idna  # only for non-ASCII names: kept off every launch's import time

    return idna.encode(host, uts46=True).decode("ascii")


def _numeric(host: str) -> bool:
    import socket  # as idna: patterns are parsed on launch, numeric hosts are rare

    try:
        socket.inet_aton(host)
    except (OSError, ValueError):
        return False
    return True


def is_ip_literal(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse(text: str, *, any_port: bool = False) -> DomainPattern:
    """``any_port``: a pattern without a port admits every port (deny lists: denying
    a host must not leave its other ports open)."""
    raw = text.strip()
    host_part, ports = _split_port(raw)
    if any_port and ports == DEFAULT_PORTS and not _has_port(raw):
        ports = None
    wildcard = host_part.startswith("*.")
    if host_part == "*" or host_part == "*.":
        raise PatternError(
            f"{raw!r} allows every host; omit network.allow for that, or name the domains"
        )
    if "*" in (host_part[2:] if wildcard else host_part):
        raise PatternError(
            f"{raw!r}: a wildcard may only be a whole first label, as in *.example.com"
        )
    host = normalise_host(host_part[2:] if wildcard else host_part)
    if wildcard:
        if is_ip_literal(host):
            raise PatternError(f"{raw!r}: an IP address cannot take a wildcard")
        if _public_suffixes().is_public(host):
            raise PatternError(
                f"{raw!r} is over-broad: {host} is a public suffix, so this admits "
                f"every site registered under it; name the domain, e.g. *.example.{host}"
            )
    return DomainPattern(text=raw, host=host, wildcard=wildcard, ports=ports)


def _has_port(raw: str) -> bool:
    return raw.rsplit("]", 1)[-1].count(":") == 1 if raw.startswith("[") else raw.count(":") == 1


def _split_port(raw: str) -> tuple[str, tuple[int, ...] | None]:
    if raw.startswith("["):  # [v6]:port
        end = raw.find("]")
        if end < 0:
            raise PatternError(f"{raw!r}: unclosed '['")
        rest = raw[end + 1 :]
        host, port = raw[: end + 1], rest[1:] if rest.startswith(":") else None
        if rest and port is None:
            raise PatternError(f"{raw!r}: expected :PORT after ']'")
    elif raw.count(":") == 1:
        host, port = raw.split(":")
    else:
        host, port = raw, None  # a bare name, or a bare IPv6 address
    if port is None:
        return host, DEFAULT_PORTS
    if port == "*":
        return host, None
    if not _DIGITS.fullmatch(port) or not 0 < int(port) < 65536:
        raise PatternError(f"{raw!r}: port must be 1-65535 or *")
    return host, (int(port),)


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    # The Public Suffix List (ICANN and private sections), bundled with the package:
    # no download at run time, so a pattern's verdict never depends on the network.
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()
