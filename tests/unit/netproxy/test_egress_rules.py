"""orchestrator/netproxy/rules.py and addresses.py: the egress proxy's decisions, as data.

Every check is the real code on real input. Addresses here are only classified, never
connected to: no test in this file opens a socket (93.184.216.34 and 169.254.169.254
are strings to judge, not places to go).
"""

from __future__ import annotations

import ipaddress

import pytest

from orchestrator.core.domains import PatternError
from orchestrator.core.spec import READ_METHODS, Egress
from orchestrator.netproxy import addresses
from orchestrator.netproxy.rules import Rules


def rules(
    allow: tuple[str, ...] = (),
    deny: tuple[str, ...] = (),
    methods: tuple[str, ...] | None = None,
    allow_local_hosts: bool = False,
) -> Rules:
    return Rules.of(
        Egress(allow=allow, deny=deny, methods=methods, inspect_tls=False,
               allow_local_hosts=allow_local_hosts)
    )


def ip(text: str) -> addresses.IPAddress:
    return ipaddress.ip_address(text)


# -- check_target: deny, allow, IP literals, ports ---------------------------------------


def test_an_allowed_name_is_admitted_and_normalised():
    assert rules(allow=("example.com",)).check_target("EXAMPLE.com.", 443) == (
        "example.com", None
    )


def test_a_name_not_in_the_allow_list_is_refused_with_the_reason():
    host, reason = rules(allow=("example.com",)).check_target("other.com", 443)
    assert host == "other.com"
    assert reason == "other.com:443 is not in network.allow"


def test_deny_wins_over_allow():
    r = rules(allow=("*.example.com", "api.example.com:*"), deny=("api.example.com",))
    for port in (80, 443, 8080):
        _, reason = r.check_target("api.example.com", port)
        assert reason == "api.example.com is denied by network.deny 'api.example.com'", port
    assert r.check_target("www.example.com", 443) == ("www.example.com", None)


def test_a_deny_without_a_port_closes_every_port_of_the_host():
    r = rules(deny=("example.com",))
    for port in (22, 80, 443, 8080):
        assert r.check_target("example.com", port)[1] is not None, port


def test_a_deny_with_a_port_leaves_the_other_ports_to_the_allow_list():
    r = rules(allow=("example.com:*",), deny=("example.com:22",))
    assert "denied" in str(r.check_target("example.com", 22)[1])
    assert r.check_target("example.com", 443)[1] is None


def test_deny_catches_other_spellings_of_the_same_name():
    r = rules(deny=("example.com",))
    for spelling in ("EXAMPLE.COM", "example.com.", "ex\u00adample.com"):
        assert "denied" in str(r.check_target(spelling, 443)[1]), spelling


def test_a_wildcard_allow_does_not_admit_the_bare_domain():
    _, reason = rules(allow=("*.example.com",)).check_target("example.com", 443)
    assert reason == "example.com:443 is not in network.allow"


def test_a_wildcard_allow_does_not_admit_a_name_that_only_ends_in_the_same_letters():
    r = rules(allow=("*.example.com",))
    for host in ("badexample.com", "example.com.evil.net", "api.example.com.evil.net"):
        assert r.check_target(host, 443)[1] is not None, host
    assert r.check_target("api.example.com", 443)[1] is None


def test_a_wildcard_deny_does_not_deny_the_bare_domain():
    r = rules(deny=("*.example.com",))
    assert r.check_target("example.com", 443)[1] is None
    assert r.check_target("www.example.com", 443)[1] is not None


@pytest.mark.parametrize(
    "host", ["192.0.2.7", "93.184.216.34", "127.0.0.1", "::1", "[2001:db8::1]", "::ffff:192.0.2.7"]
)
def test_an_ip_literal_is_refused_without_an_allow_list(host):
    _, reason = rules().check_target(host, 443)
    assert reason is not None and "is an IP address" in reason


def test_an_ip_literal_is_refused_when_only_names_are_allowed():
    _, reason = rules(allow=("example.com", "*.example.com")).check_target("192.0.2.7", 443)
    assert reason is not None and "is an IP address" in reason


def test_an_ip_literal_listed_in_the_allow_list_is_admitted_on_its_ports():
    r = rules(allow=("192.0.2.7", "[2001:db8::1]:8443"))
    assert r.check_target("192.0.2.7", 443) == ("192.0.2.7", None)
    assert r.check_target("[2001:DB8::1]", 8443) == ("2001:db8::1", None)
    assert r.check_target("192.0.2.7", 22)[1] == "192.0.2.7:22 is not in network.allow"
    assert r.check_target("2001:db8::1", 443)[1] is not None
    assert "is an IP address" in str(r.check_target("192.0.2.8", 443)[1])


def test_a_listed_ipv4_address_does_not_admit_its_ipv6_mapped_spelling_by_accident():
    # Listing 192.0.2.7 grants that literal; ::ffff:192.0.2.7 is another spelling the
    # allow list does not name, so it stays refused (never silently widened).
    _, reason = rules(allow=("192.0.2.7",)).check_target("::ffff:192.0.2.7", 443)
    assert reason is not None


@pytest.mark.parametrize("host", ["0x7f000001", "0xc0a80101", "0x7f.0x0.0x0.0x1", "10.0.0.0x1"])
def test_a_hexadecimal_address_spelling_is_not_admitted_as_a_name(host):
    """glibc's getaddrinfo reads these as 127.0.0.1, 192.168.1.1, … without any DNS
    query: admitted as "names", they reach LAN addresses by number even though no
    allow list names them (the rule check_target exists to enforce)."""
    _, reason = rules().check_target(host, 80)
    assert reason is not None, f"{host!r} was admitted as a name"


@pytest.mark.parametrize("host", ["127.1", "0x7f.1", "2130706433", "exa mple.com", ""])
def test_a_host_that_is_neither_a_name_nor_an_address_is_refused(host):
    assert rules().check_target(host, 80)[1] is not None


def test_without_an_allow_list_only_ports_80_and_443_are_open():
    r = rules()
    assert r.check_target("example.com", 80)[1] is None
    assert r.check_target("example.com", 443)[1] is None
    for port in (22, 25, 8080, 8443, 6443):
        _, reason = r.check_target("example.com", port)
        assert reason == (
            f"port {port} is not allowed: without network.allow only ports 80 and 443 are"
        )


@pytest.mark.parametrize("port", [0, -1, 65536, 100000])
def test_a_port_outside_tcp_is_refused(port):
    _, reason = rules(allow=("example.com:*",)).check_target("example.com", port)
    assert reason == f"port {port} is not a TCP port"


def test_an_over_broad_allow_pattern_is_refused_when_the_rules_are_built():
    with pytest.raises(PatternError, match="over-broad"):
        rules(allow=("*.co.uk",))
    with pytest.raises(PatternError, match="allows every host"):
        rules(deny=("*",))


# -- check_method: read-only networks ----------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_read_methods_are_allowed_on_a_read_only_network(method):
    assert READ_METHODS == ("GET", "HEAD", "OPTIONS")
    assert rules(methods=READ_METHODS).check_method(method) is None


@pytest.mark.parametrize(
    "method", ["POST", "PUT", "DELETE", "PATCH", "CONNECT", "TRACE", "PROPFIND", "get", "Get",
               "head", "GET ", " GET", "GETX", ""]
)
def test_every_other_method_is_refused_on_a_read_only_network(method):
    r = rules(methods=READ_METHODS)
    reason = r.check_method(method)
    assert reason == (
        f"method {method} is not allowed (read-only network: GET, HEAD, OPTIONS)"
    )
    assert r.read_only


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "get"])
def test_without_a_method_list_every_method_is_allowed(method):
    r = rules(methods=None)
    assert r.check_method(method) is None
    assert not r.read_only


# -- local addresses ---------------------------------------------------------------------

LOCAL = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "::1": "loopback",
    "::ffff:127.0.0.1": "loopback",
    "169.254.169.254": "link-local",
    "::ffff:169.254.169.254": "link-local",
    "fe80::1": "link-local",
    "0.0.0.0": "this host",
    "::": "this host",
    "0.1.2.3": "this host",
    "::ffff:0.0.0.0": "this host",
    "224.0.0.1": "multicast or broadcast",
    "239.255.255.250": "multicast or broadcast",
    "ff02::1": "multicast or broadcast",
    "255.255.255.255": "multicast or broadcast",
}


@pytest.mark.parametrize(("address", "kind"), sorted(LOCAL.items()))
def test_local_addresses_are_refused_by_the_address_check(address, kind):
    reason = rules().check_address("name.test", ip(address))
    assert reason is not None
    assert reason.startswith("name.test resolves to ")
    assert kind in reason
    assert addresses.local_reason(ip(address)) is not None


def test_the_hosts_own_addresses_are_known_and_refused():
    own = addresses.host_addresses()
    assert own, "no address of this host was found"
    assert ip("127.0.0.1") in own
    r = rules()
    for address in own:
        assert r.check_address("name.test", address) is not None, address


def test_an_address_of_this_host_is_refused_even_if_it_is_otherwise_public():
    # A public-looking address assigned to this host (a VPS's own IP) is "local" too.
    public = ip("93.184.216.34")
    reason = addresses.local_reason(public, own=frozenset({public}))
    assert reason == "93.184.216.34, an address of this host"
    assert addresses.local_reason(ip("::ffff:93.184.216.34"), own=frozenset({public}))


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946",
                                     "::ffff:93.184.216.34", "1.1.1.1"])
def test_a_public_address_is_not_local(address):
    assert ip(address) not in addresses.host_addresses()
    assert addresses.local_reason(ip(address)) is None
    assert rules().check_address("name.test", ip(address)) is None


def test_unwrap_judges_an_ipv4_mapped_address_as_ipv4():
    assert addresses.unwrap(ip("::ffff:10.1.2.3")) == ip("10.1.2.3")
    assert addresses.unwrap(ip("2001:db8::1")) == ip("2001:db8::1")


# -- allow_local_hosts -------------------------------------------------------------------


@pytest.mark.parametrize("address", sorted(LOCAL))
def test_allow_local_hosts_lifts_the_address_check(address):
    assert rules(allow_local_hosts=True).check_address("name.test", ip(address)) is None


def test_allow_local_hosts_lifts_nothing_but_the_address_check():
    r = rules(allow=("example.com",), deny=("bad.example.com",), methods=READ_METHODS,
              allow_local_hosts=True)
    assert "is an IP address" in str(r.check_target("127.0.0.1", 443)[1])
    assert "not in network.allow" in str(r.check_target("other.com", 443)[1])
    assert "not in network.allow" in str(r.check_target("example.com", 22)[1])
    assert r.check_method("POST") is not None
    r2 = rules(deny=("bad.example.com",), allow_local_hosts=True)
    assert "denied" in str(r2.check_target("bad.example.com", 443)[1])
    assert "only ports 80 and 443" in str(r2.check_target("example.com", 22)[1])
