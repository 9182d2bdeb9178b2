"""The host's local routes as the egress proxy reads them: every address *and* every
wider local route (AnyIP), IPv4 and IPv6 — a name resolving into any of them is this
host, however it was configured."""

from __future__ import annotations

import ipaddress

from orchestrator.netproxy import addresses

FIB_TRIE = """\
Local:
  +-- 0.0.0.0/0 3 0 5
     +-- 10.99.0.0/24 2 0 2
        |-- 10.99.0.0
           /24 host LOCAL
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.0
           /8 host LOCAL
        |-- 127.0.0.1
           /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     |-- 192.0.2.0
        /24 link UNICAST
     |-- 192.0.2.2
        /32 host LOCAL
"""

IPV6_ROUTE = (
    "fd990000000000000000000000000000 40 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000000 00000001 00000000 80200001       lo\n"
    "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n"
    "00000000000000000000000000000001 80 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n"
)


def test_every_local_ipv4_route_counts_not_only_single_addresses() -> None:
    found = addresses.parse_fib_trie(FIB_TRIE)
    assert found == [
        ipaddress.ip_network("10.99.0.0/24"),
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("192.0.2.2/32"),
    ]  # neither the broadcast leaf nor the on-link /24 is this host


def test_local_ipv6_routes_come_from_the_route_flags_not_the_interface_list() -> None:
    found = addresses.parse_ipv6_route(IPV6_ROUTE)
    assert found == [ipaddress.ip_network("fd99::/64"), ipaddress.ip_network("::1/128")]


def test_this_hosts_own_addresses_are_local_on_this_machine() -> None:
    own = addresses.host_addresses()
    assert ipaddress.ip_address("127.0.0.1") in own
    for address in own:
        assert addresses.local_reason(address) is not None
