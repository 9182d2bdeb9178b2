"""Which addresses a permitted name must never lead to.

Owns: the list of "local" addresses — loopback, link-local (cloud metadata services
live at 169.254.169.254), unspecified, multicast, broadcast, and every address this
host holds on any interface (the Docker bridge gateway, the LAN address) — so a name
an allow list admits cannot be pointed (by DNS, or a rebinding trick) at the host
the proxy runs on.
Does not own: the domain rules (``rules``).
"""

from __future__ import annotations

import ipaddress
import itertools
import time
from pathlib import Path

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # connect() to 0.x reaches this host
_OWN_TTL_S = 1.0  # interfaces come and go (engines add bridges): read them again soon
_own_cache: tuple[float, frozenset[IPAddress]] = (0.0, frozenset())


def unwrap(ip: IPAddress) -> IPAddress:
    """An IPv4 address hiding in IPv6 (::ffff:127.0.0.1) is judged as IPv4."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def local_reason(ip: IPAddress, own: frozenset[IPAddress] | None = None) -> str | None:
    """What makes ``ip`` local (``"127.0.0.1, a loopback address"``), or None."""
    ip = unwrap(ip)
    if ip.is_loopback:
        return f"{ip}, a loopback address"
    if ip.is_link_local:
        return f"{ip}, a link-local address (where cloud metadata services answer)"
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK):
        return f"{ip}, which means this host"
    if ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        return f"{ip}, a multicast or broadcast address"
    if ip in (host_addresses() if own is None else own):
        return f"{ip}, an address of this host"
    return None


def host_addresses() -> frozenset[IPAddress]:
    global _own_cache
    stamp, cached = _own_cache
    now = time.monotonic()
    if now - stamp < _OWN_TTL_S:
        return cached
    found = frozenset(_ipv4_local() | _ipv6_local())
    _own_cache = (now, found)
    return found


def _ipv4_local() -> set[IPAddress]:
    """Every IPv4 address the kernel treats as local, from the routing trie: each
    ``/32 host LOCAL`` leaf is one (this covers secondary addresses ioctl misses)."""
    out: set[IPAddress] = set()
    try:
        lines = Path("/proc/net/fib_trie").read_text(encoding="ascii").splitlines()
    except OSError:
        return out
    for previous, line in itertools.pairwise(lines):
        if line.strip() == "/32 host LOCAL":
            candidate = previous.strip().removeprefix("|-- ").strip()
            try:
                out.add(ipaddress.IPv4Address(candidate))
            except ValueError:
                continue
    return out


def _ipv6_local() -> set[IPAddress]:
    out: set[IPAddress] = set()
    try:
        lines = Path("/proc/net/if_inet6").read_text(encoding="ascii").splitlines()
    except OSError:
        return out
    for line in lines:
        hexaddr = line.split()[0] if line.split() else ""
        if len(hexaddr) == 32:
            out.add(ipaddress.IPv6Address(bytes.fromhex(hexaddr)))
    return out
