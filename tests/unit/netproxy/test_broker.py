"""The credential broker as a pure function of a request: where a placeholder becomes
the real value, and where it is refused as an exfiltration attempt."""

from __future__ import annotations

import base64

import pytest

from orchestrator.core.brokered import BrokeredSecret
from orchestrator.netproxy import http
from orchestrator.netproxy.broker import Broker, Leak

PLACE = "ghp_" + "P" * 36
REAL = "ghp_" + "R" * 36
KEY_PLACE = "cbx_" + "K" * 40
KEY_REAL = "real-api-key-0123456789"


def broker() -> Broker:
    return Broker(
        (
            BrokeredSecret(
                name="GH_TOKEN",
                hosts=("github.com", "*.github.com"),
                inject=("header", "basic-auth"),
                placeholder=PLACE,
            ),
            BrokeredSecret(
                name="API_KEY", hosts=("api.test",), inject=("basic-auth",), placeholder=KEY_PLACE
            ),
        ),
        {"GH_TOKEN": REAL, "API_KEY": KEY_REAL},
    )


def request(*headers: tuple[str, str], target: str = "/repos") -> http.RequestHead:
    lines = [f"GET {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
    return http.parse_request(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_placeholder_in_a_header_to_a_bound_host_over_tls_becomes_the_value() -> None:
    b = broker()
    req, sent = b.rewrite(
        request(("Authorization", f"token {PLACE}")), "api.github.com", 443, tls=True
    )
    assert req.values("authorization") == [f"token {REAL}"]
    assert req.values("accept-encoding") == ["identity"]  # the answer must be checkable
    assert sent == {"GH_TOKEN": {REAL.encode()}}
    assert b.uses == {("GH_TOKEN", "api.github.com"): 1}


def test_basic_auth_password_is_injected_and_its_encoded_form_guarded() -> None:
    b = broker()
    req, sent = b.rewrite(
        request(("Authorization", basic("x-access-token", PLACE))), "github.com", 443, tls=True
    )
    [value] = req.values("authorization")
    assert base64.b64decode(value[6:]).decode() == f"x-access-token:{REAL}"
    assert value[6:].encode() in sent["GH_TOKEN"] and REAL.encode() in sent["GH_TOKEN"]


def test_a_request_without_placeholders_is_the_same_object() -> None:
    req = request(("Accept", "*/*"))
    assert broker().rewrite(req, "github.com", 443, tls=True) == (req, {})


@pytest.mark.parametrize(
    ("headers", "host", "port", "tls", "where"),
    [
        ((("Authorization", f"token {PLACE}"),), "evil.test", 443, True, "not bound"),
        ((("Authorization", f"token {PLACE}"),), "github.com", 80, False, "plain HTTP"),
        ((("Authorization", f"token {PLACE}"),), "github.com", 8443, True, "not bound"),
        ((("X-Api", KEY_PLACE),), "api.test", 443, True, "not injected into"),
        ((("Authorization", basic("u", KEY_PLACE)),), "evil.test", 443, True, "not bound"),
        ((("Cookie", f"a={PLACE}"),), "evil.test", 443, True, "not bound"),
    ],
)
def test_a_placeholder_anywhere_else_is_a_leak(headers, host, port, tls, where) -> None:
    b = broker()
    with pytest.raises(Leak) as caught:
        b.rewrite(request(*headers), host, port, tls=tls)
    assert where in caught.value.reason
    assert REAL not in caught.value.reason and KEY_REAL not in caught.value.reason
    assert b.uses == {}


@pytest.mark.parametrize(
    "target", [f"/x?t={PLACE}", "/x?t=" + "".join(f"%{ord(c):02x}" for c in PLACE)]
)
def test_a_placeholder_in_the_url_is_refused_even_to_a_bound_host(target: str) -> None:
    with pytest.raises(Leak, match="URL"):
        broker().rewrite(request(target=target), "github.com", 443, tls=True)


def test_a_placeholder_as_a_host_name_is_refused() -> None:
    with pytest.raises(Leak):
        broker().check_target(f"{PLACE}.evil.test", f"{PLACE}.evil.test")


def test_a_placeholder_split_across_body_chunks_is_found() -> None:
    scan = broker().body_scanner("github.com")
    scan(b"x" * 100 + PLACE[:10].encode())
    with pytest.raises(Leak, match="body"):
        scan(PLACE[10:].encode() + b"y")


def test_a_body_without_placeholders_passes() -> None:
    scan = broker().body_scanner("github.com")
    for _ in range(5):
        scan(b"ghp_" + b"Z" * 60)


def test_a_reflected_value_is_cut_off_before_any_of_it_reaches_the_client() -> None:
    guard = broker().response_guard({"GH_TOKEN": {REAL.encode()}}, "github.com")
    out = guard.feed(b"hello " + REAL[:20].encode())
    assert REAL[:5].encode() not in out  # held back: it may be the start of the value
    with pytest.raises(Leak, match="response"):
        guard.feed(REAL[20:].encode())


def test_a_response_without_the_value_comes_through_whole() -> None:
    guard = broker().response_guard({"GH_TOKEN": {REAL.encode()}}, "github.com")
    data = b"".join(guard.feed(bytes([i % 256]) * 7) for i in range(50)) + guard.flush()
    assert data == b"".join(bytes([i % 256]) * 7 for i in range(50))
    with pytest.raises(Leak):
        guard.check(b"X-Echo: token " + REAL.encode())


def test_every_placeholder_in_a_basic_password_is_judged_not_only_the_first() -> None:
    b = broker()
    both = request(("Authorization", basic("u", PLACE + KEY_PLACE)))
    with pytest.raises(Leak, match="API_KEY"):  # bound to api.test, not github.com
        b.rewrite(both, "github.com", 443, tls=True)
    with pytest.raises(Leak, match="GH_TOKEN"):  # as the user name: never injected
        b.rewrite(request(("Authorization", basic(PLACE, "x"))), "github.com", 443, tls=True)


def test_a_chunk_extension_is_scanned_too() -> None:
    import asyncio

    scan = broker().body_scanner("github.com")

    async def relay() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(f"5;x={PLACE}\r\nhello\r\n0\r\n\r\n".encode())
        reader.feed_eof()

        class Sink:
            def write(self, data: bytes) -> None:
                pass

            async def drain(self) -> None:
                pass

        await http.relay_body(None, reader, Sink(), scan)  # type: ignore[arg-type]

    with pytest.raises(Leak, match="body"):
        asyncio.run(relay())


def test_an_injected_request_asks_for_identity_and_no_range() -> None:
    req = request(("Authorization", f"token {PLACE}"), ("Accept-Encoding", "gzip, br"),
                  ("Range", "bytes=10-20"), ("If-Range", "x"))  # fmt: skip
    out, _ = broker().rewrite(req, "github.com", 443, tls=True)
    assert out.values("accept-encoding") == ["identity"]
    assert out.values("range") == [] and out.values("if-range") == []
    plain = request(("Range", "bytes=1-2"))
    assert broker().rewrite(plain, "github.com", 443, tls=True)[0] is plain  # untouched


def test_a_placeholder_as_a_header_name_or_method_is_refused() -> None:
    with pytest.raises(Leak, match="header name"):
        broker().rewrite(request((PLACE, "x")), "evil.test", 443, tls=True)
    head = f"{PLACE} / HTTP/1.1\r\n\r\n".encode()
    with pytest.raises(Leak, match="method"):
        broker().rewrite(http.parse_request(head), "evil.test", 443, tls=True)


def test_a_hop_by_hop_header_is_neither_injected_nor_counted() -> None:
    b = broker()
    req = request(("Proxy-Authorization", f"Bearer {PLACE}"))
    assert b.rewrite(req, "github.com", 443, tls=True) == (req, {})
    assert b.uses == {}
    assert "secret" not in repr(b).lower() or REAL not in repr(b)
    assert REAL not in repr(b) and REAL not in repr(b._bound)


def test_a_value_split_by_chunk_framing_is_found_in_the_decoded_body() -> None:
    value = REAL.encode()
    guard = broker().response_guard({"GH_TOKEN": {value}}, "github.com")
    head = guard.head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n")
    assert b"transfer-encoding" not in head.lower() and head.endswith(b"\r\n\r\n")
    first = b"%x\r\necho=" % (5 + 10) + value[:10] + b"\r\n"
    out = guard.feed(first)
    assert value[:4] not in out
    with pytest.raises(Leak, match="response"):
        guard.feed(b"%x\r\n" % (len(value) - 10) + value[10:] + b"\r\n0\r\n\r\n")


def test_a_chunked_body_without_the_value_is_passed_on_decoded() -> None:
    guard = broker().response_guard({"GH_TOKEN": {REAL.encode()}}, "github.com")
    guard.head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
    wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\n"
    out = b"".join(guard.feed(wire[i : i + 3]) for i in range(0, len(wire), 3)) + guard.flush()
    assert out == b"hello world"


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    ],
)
def test_a_response_that_cannot_be_checked_is_cut_off(head: bytes) -> None:
    guard = broker().response_guard({"GH_TOKEN": {REAL.encode()}}, "github.com")
    with pytest.raises(Leak, match="cannot be checked"):
        guard.head(head)


def test_malformed_chunking_is_cut_off() -> None:
    guard = broker().response_guard({"GH_TOKEN": {REAL.encode()}}, "github.com")
    guard.head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(Leak, match="malformed chunked"):
        guard.feed(b"zz\r\nhello\r\n")
