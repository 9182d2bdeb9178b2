"""orchestrator/core/domains.py: the pattern language of network.allow / network.deny.

Pure functions, so every test calls the real code with real input: the Public Suffix
List is the one bundled with ``publicsuffixlist`` (no download), IDNA is Python's codec.
No test here opens a socket.
"""

from __future__ import annotations

import pytest

from orchestrator.core import domains
from orchestrator.core.domains import (
    DEFAULT_PORTS,
    DomainPattern,
    PatternError,
    normalise_host,
    parse,
)

# -- parsing: the forms a pattern may take ---------------------------------------------


def test_a_bare_name_admits_that_name_on_ports_80_and_443_only():
    pattern = parse("example.com")
    assert pattern == DomainPattern(
        text="example.com", host="example.com", wildcard=False, ports=(80, 443)
    )
    assert DEFAULT_PORTS == (80, 443)
    assert pattern.admits("example.com", 80)
    assert pattern.admits("example.com", 443)
    for port in (22, 25, 8080, 8443, 1, 65535):
        assert not pattern.admits("example.com", port), port


def test_a_name_with_an_explicit_port_admits_that_port_alone():
    pattern = parse("example.com:8443")
    assert pattern.ports == (8443,)
    assert pattern.admits("example.com", 8443)
    assert not pattern.admits("example.com", 443)
    assert not pattern.admits("example.com", 80)


def test_a_star_port_admits_every_port():
    pattern = parse("example.com:*")
    assert pattern.ports is None
    for port in (1, 22, 80, 443, 8080, 65535):
        assert pattern.admits("example.com", port)
    assert not pattern.admits("other.com", 80)


@pytest.mark.parametrize(
    "text",
    ["example.com:0", "example.com:65536", "example.com:99999", "example.com:", "example.com:+80",
     "example.com:-1", "example.com:8o", "example.com:0x50", "example.com: 80"],
)
def test_a_port_that_is_not_1_to_65535_or_star_is_refused(text):
    with pytest.raises(PatternError, match="port must be 1-65535"):
        parse(text)


def test_a_pattern_is_normalised_like_the_hosts_it_is_matched_against():
    pattern = parse("  WWW.Example.COM.  ")
    assert pattern.host == "www.example.com"
    assert pattern.admits(normalise_host("www.EXAMPLE.com."), 443)


def test_an_ipv4_literal_pattern_is_kept_as_an_address():
    pattern = parse("192.0.2.7:8080")
    assert (pattern.host, pattern.wildcard, pattern.ports) == ("192.0.2.7", False, (8080,))
    assert pattern.admits("192.0.2.7", 8080)
    assert not pattern.admits("192.0.2.8", 8080)


def test_a_bracketed_ipv6_literal_with_a_port_admits_that_address_and_port():
    pattern = parse("[::1]:443")
    assert (pattern.host, pattern.ports) == ("::1", (443,))
    assert pattern.admits(normalise_host("[::1]"), 443)
    assert pattern.admits(normalise_host("0:0:0:0:0:0:0:1"), 443)
    assert not pattern.admits("::1", 80)


def test_an_ipv6_literal_without_a_port_takes_the_default_ports():
    assert parse("[2001:db8::1]").ports == DEFAULT_PORTS
    # Bare (unbracketed) IPv6: its colons are not mistaken for a port separator.
    bare = parse("2001:DB8:0::1")
    assert (bare.host, bare.ports) == ("2001:db8::1", DEFAULT_PORTS)
    assert parse("[2001:db8::1]:*").ports is None


@pytest.mark.parametrize("text", ["[::1", "[::1]x", "[::1]443", "[::1]:", "[::1]:70000"])
def test_a_malformed_bracketed_address_is_refused(text):
    with pytest.raises(PatternError):
        parse(text)


# -- wildcards and the Public Suffix List ------------------------------------------------


def test_a_wildcard_admits_names_below_the_domain_but_not_the_domain_itself():
    pattern = parse("*.example.com")
    assert pattern.wildcard and pattern.host == "example.com"
    assert pattern.admits("api.example.com", 443)
    assert pattern.admits("a.b.c.example.com", 80)
    assert not pattern.admits("example.com", 443)


def test_a_wildcard_does_not_admit_a_name_that_merely_ends_with_the_same_letters():
    pattern = parse("*.example.com")
    for host in ("badexample.com", "xexample.com", "example.com.evil.net", "example.comm",
                 "api.example.co"):
        assert not pattern.admits(host, 443), host


def test_a_wildcard_keeps_the_default_ports():
    pattern = parse("*.example.com")
    assert not pattern.admits("api.example.com", 22)
    assert parse("*.example.com:*").admits("api.example.com", 22)


@pytest.mark.parametrize("text", ["*", "*.", " * ", "*:443", "*:*"])
def test_a_lone_star_is_refused_as_allowing_every_host(text):
    with pytest.raises(PatternError, match="allows every host"):
        parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "*.com",
        "*.COM",
        "*.com.",
        "*.uk",
        "*.co.uk",
        "*.github.io",  # private section of the list
        "*.s3.amazonaws.com",  # private section
        "*.test",  # unknown TLD: the list's default rule makes it public
        "*.рф",  # IDN TLD, compared in its A-label form
        "*.xn--p1ai",
        "*.foo.kawasaki.jp",  # a wildcard rule of the list: *.kawasaki.jp
        "*.foo.ck",  # *.ck
        "*.com:443",
        "*.co.uk:*",
    ],
)
def test_a_wildcard_over_a_public_suffix_is_refused_as_over_broad(text):
    with pytest.raises(PatternError, match="over-broad"):
        parse(text)


@pytest.mark.parametrize(
    "text",
    ["*.example.com", "*.example.co.uk", "*.example.github.io", "*.allowed.test",
     "*.city.kawasaki.jp",  # the list's exception !city.kawasaki.jp
     "*.www.ck"],  # !www.ck
)
def test_a_wildcard_one_level_below_a_public_suffix_is_accepted(text):
    assert parse(text).wildcard


@pytest.mark.parametrize(
    "text", ["*example.com", "foo.*.com", "*.*.example.com", "ex*ample.com", "example.*",
             "**.example.com", "*.example.com*"]
)
def test_a_wildcard_anywhere_but_a_whole_first_label_is_refused(text):
    with pytest.raises(PatternError, match="whole first label"):
        parse(text)


@pytest.mark.parametrize("text", ["*.127.0.0.1", "*.[::1]", "*.192.0.2.7:80"])
def test_an_ip_address_cannot_take_a_wildcard(text):
    with pytest.raises(PatternError, match="cannot take a wildcard"):
        parse(text)


@pytest.mark.parametrize(
    "text", ["", ":80", "exa mple.com", "-bad.com", "bad-.com", "a..b.com", "exa/mple.com",
             "user@example.com", "example.com%2f", "x" * 64 + ".com"]
)
def test_a_pattern_that_is_not_a_host_name_is_refused(text):
    with pytest.raises(PatternError):
        parse(text)


# -- IDNA --------------------------------------------------------------------------------


def test_an_internationalised_name_is_compared_in_its_a_label_form():
    pattern = parse("bücher.example")
    assert pattern.host == "xn--bcher-kva.example"
    assert pattern.admits(normalise_host("BÜCHER.example"), 443)
    assert pattern.admits(normalise_host("xn--bcher-kva.example"), 443)
    assert not pattern.admits(normalise_host("bucher.example"), 443)


def test_an_internationalised_wildcard_matches_a_labels_below_it():
    pattern = parse("*.bücher.example")
    assert pattern.admits(normalise_host("shop.bücher.example"), 443)
    assert pattern.admits("shop.xn--bcher-kva.example", 443)


def test_invisible_characters_are_mapped_away_before_matching():
    # A soft hyphen (U+00AD) vanishes under IDNA: a deny of example.com must catch it.
    deny = parse("example.com", any_port=True)
    assert normalise_host("ex\u00adample.com") == "example.com"
    assert deny.admits(normalise_host("ex\u00adample.com"), 443)


def test_fullwidth_and_ideographic_dot_spellings_of_an_ip_are_not_names():
    fullwidth_digits = "\uff11\uff12\uff17.\uff10.\uff10.\uff11"  # FULLWIDTH DIGITs
    for host in (fullwidth_digits, "127\u30020\u30020\u30021", "127\uff0e0\uff0e0\uff0e1"):
        with pytest.raises(PatternError):
            normalise_host(host)


def test_a_deny_of_an_idna2008_name_catches_the_name_clients_actually_send():
    """faß.de is xn--fa-hia.de in IDNA 2008 (what curl/libidn2, browsers and Python's
    ``idna`` package resolve); IDNA 2003 maps it to the different domain fass.de. A deny
    list must not be sidestepped by the spelling clients really use: either the pattern
    is refused as ambiguous, or it denies xn--fa-hia.de."""
    try:
        deny = parse("faß.de", any_port=True)
    except PatternError:
        return
    assert deny.admits(normalise_host("xn--fa-hia.de"), 443), (
        f"deny 'faß.de' was normalised to {deny.host!r}: the real faß.de is not denied"
    )


# -- normalise_host: what a request may name ---------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("  example.com ", "example.com"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("::FFFF:127.0.0.1", "::ffff:7f00:1"),
        ("[2001:DB8::1]", "2001:db8::1"),
        ("a_b.example.com", "a_b.example.com"),
    ],
)
def test_normalise_host_gives_one_spelling_per_host(given, expected):
    assert normalise_host(given) == expected


@pytest.mark.parametrize(
    "host",
    [
        "127.1",
        "127.0.1",
        "0x7f.1",
        "0177.0.0.1",
        "0177.1",
        "2130706433",
        "1.2.3.4.5",
        "01.02.03.04",
        "10.0.0.01",
        # Hexadecimal forms whose last label is not all digits: glibc's resolver
        # (inet_aton, used by getaddrinfo before any DNS query) reads every one of
        # these as an address, just like 127.1 and 0x7f.1.
        "0x7f000001",
        "0X7F000001",
        "0x7f.0x0.0x0.0x1",
        "0x7f.0.0.0x1",
        "127.0.0.0x1",
        "0xc0a80101",
        "10.0.0.0x1",
    ],
)
def test_numeric_spellings_that_resolvers_read_as_addresses_are_refused(host):
    with pytest.raises(PatternError):
        normalise_host(host)


@pytest.mark.parametrize("host", ["", ".", "a..b", "exa mple.com", "ex\x00ample.com",
                                  "example.com\r\nX: y", "x" * 64 + ".com", "-a.com"])
def test_normalise_host_refuses_what_is_not_a_host(host):
    with pytest.raises(PatternError):
        normalise_host(host)


def test_is_ip_literal_tells_addresses_from_names():
    assert domains.is_ip_literal("127.0.0.1")
    assert domains.is_ip_literal("::1")
    assert not domains.is_ip_literal("[::1]")  # callers normalise first
    assert not domains.is_ip_literal("example.com")
    assert not domains.is_ip_literal("127.1")


# -- any_port: deny lists ----------------------------------------------------------------


def test_a_deny_pattern_without_a_port_denies_every_port():
    deny = parse("example.com", any_port=True)
    assert deny.ports is None
    for port in (22, 25, 80, 443, 8080):
        assert deny.admits("example.com", port)


def test_a_deny_pattern_with_a_port_denies_that_port_only():
    deny = parse("example.com:22", any_port=True)
    assert deny.ports == (22,)
    assert not deny.admits("example.com", 443)
    assert parse("example.com:443", any_port=True).ports == (443,)
    assert parse("example.com:80", any_port=True).ports == (80,)


def test_any_port_applies_to_ipv6_and_wildcard_deny_patterns_too():
    assert parse("[::1]", any_port=True).ports is None
    assert parse("::1", any_port=True).ports is None
    assert parse("[::1]:443", any_port=True).ports == (443,)
    assert parse("*.example.com", any_port=True).ports is None
    assert parse("*.example.com:25", any_port=True).ports == (25,)


def test_without_any_port_an_allow_pattern_keeps_the_default_ports():
    assert parse("example.com").ports == DEFAULT_PORTS
    assert parse("[::1]").ports == DEFAULT_PORTS


# -- covers: may a user profile narrow an allow list -------------------------------------


@pytest.mark.parametrize(
    ("wide", "narrow"),
    [
        ("example.com", "example.com"),
        ("example.com", "example.com:443"),
        ("example.com", "example.com:80"),
        ("example.com:*", "example.com"),
        ("example.com:*", "example.com:22"),
        ("*.example.com", "api.example.com"),
        ("*.example.com", "a.b.example.com:443"),
        ("*.example.com", "*.api.example.com"),
        ("*.example.com", "*.example.com"),
        ("*.example.com:*", "*.api.example.com:8080"),
        ("[::1]:*", "[::1]:443"),
    ],
)
def test_covers_holds_when_the_narrow_pattern_admits_nothing_more(wide, narrow):
    assert parse(wide).covers(parse(narrow))


@pytest.mark.parametrize(
    ("wide", "narrow"),
    [
        ("example.com", "example.com:22"),
        ("example.com", "example.com:*"),
        ("example.com:443", "example.com"),
        ("example.com", "api.example.com"),
        ("example.com", "*.example.com"),
        ("*.example.com", "example.com"),
        ("*.example.com", "badexample.com"),
        ("*.example.com", "*.badexample.com"),
        ("*.example.com", "*.com.example.net"),
        ("*.api.example.com", "*.example.com"),
        ("*.example.com", "api.example.com:22"),
        ("*.example.com", "*.example.com:*"),
        ("api.example.com", "*.api.example.com"),
    ],
)
def test_covers_fails_when_the_narrow_pattern_would_widen_the_list(wide, narrow):
    assert not parse(wide).covers(parse(narrow))


def test_covers_agrees_with_admits_on_sample_targets():
    patterns = [parse(t) for t in ("example.com", "example.com:*", "*.example.com",
                                   "*.api.example.com:8080", "api.example.com:443")]
    targets = [(h, p) for h in ("example.com", "api.example.com", "x.api.example.com",
                                "badexample.com") for p in (22, 80, 443, 8080)]
    for wide in patterns:
        for narrow in patterns:
            if wide.covers(narrow):
                for host, port in targets:
                    if narrow.admits(host, port):
                        assert wide.admits(host, port), (wide.text, narrow.text, host, port)
