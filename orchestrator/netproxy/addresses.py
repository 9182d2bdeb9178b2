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
import time
from pathlib import Path

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # connect() to 0.x reaches this host
_OWN_TTL_S = 1.0  # interfaces come and go (engines add bridges): read them again soon
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_own_cache: tuple[float, tuple[IPNetwork, ...]] = (0.0, ())


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
    if own is not None and ip in own:
        return f"{ip}, an address of this host"
    if own is None and any(ip in net for net in _local_routes()):
        return f"{ip}, an address of this host"
    return None


def host_addresses() -> frozenset[IPAddress]:
    """Every single address this host answers on (each /32 and /128 local route)."""
    return frozenset(net.network_address for net in _local_routes() if net.num_addresses == 1)


def _local_routes() -> tuple[IPNetwork, ...]:
    global _own_cache
    stamp, cached = _own_cache
    now = time.monotonic()
    if now - stamp < _OWN_TTL_S:
        return cached
    found = tuple(
        dict.fromkeys(
            [
                *parse_fib_trie(_read("/proc/net/fib_trie")),
                *parse_ipv6_route(_read("/proc/net/ipv6_route")),
            ]
        )
    )
    _own_cache = (now, found)
    return found


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii")
    except OSError:
        return ""


def parse_fib_trie(text: str) -> list[IPNetwork]:
    """Every IPv4 route of type LOCAL in the kernel's routing trie: each address on an
    interface (/32), and wider ones (127.0.0.0/8, an "AnyIP" ``ip route add local
    10.99.0.0/24 dev lo``) whose every address this host answers on."""
    out: list[IPNetwork] = []
    leaf = ""
    for line in text.splitlines():
        text = line.strip()
        if text.startswith("|-- "):
            leaf = text.removeprefix("|-- ").strip()
        elif text.endswith(" host LOCAL") and text.startswith("/") and leaf:
            try:
                out.append(ipaddress.ip_network(f"{leaf}{text.split()[0]}", strict=False))
            except ValueError:
                continue
    return out


_RTF_LOCAL = 0x80000000


def parse_ipv6_route(text: str) -> list[IPNetwork]:
    """IPv6 routes flagged local (the addresses of every interface, and local
    prefixes routed to lo), from /proc/net/ipv6_route (every table)."""
    out: list[IPNetwork] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 9 or not int(fields[8], 16) & _RTF_LOCAL:
            continue
        address = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
        out.append(ipaddress.ip_network(f"{address}/{int(fields[1], 16)}", strict=False))
    return out
