"""HTTP and SOCKS5 requests from the sandbox to the egress proxy (``netproxy``): bytes
go over a loopback socketpair into the proxy's own client protocol
(``connection.Connection``, then ``Proxy.handle``), exactly as a sandbox's connection
arrives. Names resolve from a fixed table and the dialer is a fake whose "origin" is
the other end of a socketpair: nothing leaves this process.

The property: whatever the sandbox sends, the proxy answers (a refusal, a SOCKS reply,
the origin's answer) or closes — never a hang or an internal error (its catch-all); it
connects only to a target the rules allow, at an address it checked; what reaches the
origin is one request it parsed (a read-only network: a read method; ``Connection:
close``); and every refusal a rule or a bad request makes has its audit record."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.spec import READ_METHODS, Egress
from orchestrator.netproxy import connection, http, server
from orchestrator.netproxy.dial import Dialer
from orchestrator.netproxy.resolver import ResolveError

from .conftest import fuzz, odd_text, raw_bytes

ORIGIN_IP = ipaddress.ip_address("93.184.216.34")
ALLOWED = {("origin.test", 80), ("origin.test", 443), ("x.allowed.test", 8080),
           ("www.origin.test", 80), ("www.origin.test", 443)}
HOSTS = ["origin.test", "ORIGIN.test.", "bad.origin.test", "www.origin.test",
         "x.allowed.test:8080", "evil.test", "127.0.0.1", "[::1]", "origin.test:99999",
         "origin.test:0", "origin.test:" + "0" * 5000]  # fmt: skip


class Seen:
    def __init__(self) -> None:
        self.dials: list[tuple[str, list[str], int]] = []
        self.upstream: list[bytes] = []
        self.audit: list[dict[str, Any]] = []
        self.bugs: list[str] = []


class FakeDialer:
    """``Dialer`` with the network replaced: the origin is a socketpair's other end,
    which records what it got and answers one small response."""

    streams = Dialer.streams

    def __init__(self, seen: Seen) -> None:
        self.seen = seen
        self.origins: set[asyncio.Future[None]] = set()

    async def open(self, host: str, ips: list[Any], port: int, factory: Any, *, tls: bool,
                   loop: Any = None, task: Any = None) -> Any:  # fmt: skip
        self.seen.dials.append((host, [str(ip) for ip in ips], port))
        ours, theirs = socket.socketpair()
        loop = asyncio.get_running_loop()
        origin = asyncio.ensure_future(self._origin(theirs))
        self.origins.add(origin)
        origin.add_done_callback(self.origins.discard)
        return await loop.create_connection(factory, sock=ours)

    async def _origin(self, sock: socket.socket) -> None:
        reader, writer = await asyncio.open_connection(sock=sock)
        got = b""
        try:
            async with asyncio.timeout(0.5):
                while b"\r\n\r\n" not in got and (more := await reader.read(65536)):
                    got += more
        except TimeoutError:
            pass
        self.seen.upstream.append(got)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        writer.close()


async def resolve(host: str, port: int) -> list[Any]:
    if host in ("origin.test", "www.origin.test", "x.allowed.test", "bad.origin.test"):
        return [ORIGIN_IP]
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        raise ResolveError(f"cannot resolve {host}: not in the test's table") from None


def make_proxy(seen: Seen, *, read_only: bool) -> server.Proxy:
    egress = Egress(allow=("origin.test", "*.origin.test", "*.allowed.test:8080"),
                    deny=("bad.origin.test",),
                    methods=READ_METHODS if read_only else None, inspect_tls=False,
                    allow_local_hosts=False)  # fmt: skip
    proxy = server.Proxy(egress, audit=seen.audit.append, ca=None)
    proxy.dialer = FakeDialer(seen)  # type: ignore[assignment]
    proxy.resolver.resolve = resolve  # type: ignore[method-assign]
    return proxy


@functools.cache
def loop() -> asyncio.AbstractEventLoop:
    return asyncio.new_event_loop()


async def exchange(proxy: server.Proxy, data: bytes) -> bytes:
    client, ours = socket.socketpair()
    client.setblocking(False)
    running = asyncio.get_running_loop()
    await running.connect_accepted_socket(
        lambda: connection.Connection(proxy, running, lambda c: True, lambda c: None), sock=ours
    )
    await running.sock_sendall(client, data)
    client.shutdown(socket.SHUT_WR)
    answer = b""
    async with asyncio.timeout(5):  # the proxy answers or closes: never waits on us
        while more := await running.sock_recv(client, 65536):
            answer += more
    client.close()
    await asyncio.sleep(0)
    return answer


def check(data: bytes, read_only: bool, monkeypatch: Any) -> None:
    seen = Seen()
    for module in (server, connection):
        monkeypatch.setattr(module, "debug", lambda what, **kw: seen.bugs.append(f"{what} {kw}"))
    proxy = make_proxy(seen, read_only=read_only)
    answer = loop().run_until_complete(exchange(proxy, data))
    assert not seen.bugs, f"the proxy's catch-all caught {seen.bugs} on {data!r:.300}"
    for host, ips, port in seen.dials:
        assert (host, port) in ALLOWED and ips == [str(ORIGIN_IP)], (host, ips, port, data)
    tunnel = data.startswith((b"CONNECT ", b"\x05"))
    for got in seen.upstream:
        if got.startswith(b"\x16") or not got or (tunnel and not read_only):
            continue  # TLS, nothing yet, or an opaque tunnel (by design: README)
        head = http.parse_request(got[: got.index(b"\r\n\r\n") + 4])  # one head it wrote
        assert ("connection", "close") in [(n, v.lower()) for n, v in
                                           zip(head.names, (v for _, v in head.headers),
                                               strict=True)]  # fmt: skip
        if read_only:
            assert head.method in READ_METHODS, head
    status = answer[9:12] if answer.startswith(b"HTTP/1.1 ") else b""
    if status in (b"400", b"403", b"431", b"501") and b"X-Codex-Box-Denied" in answer:
        assert seen.audit, f"a refusal without its audit record: {answer[:200]!r}"


methods = st.sampled_from(["GET", "HEAD", "POST", "CONNECT", "PUT", "get", "G ET", ""]) | odd_text
targets = st.builds(
    lambda scheme, host, path: f"{scheme}{host}{path}",
    st.sampled_from(["http://", "https://", "", "HTTP://", "ftp://"]),
    st.sampled_from(HOSTS) | odd_text,
    st.sampled_from(["/", "/a?b", "", " ", "/%00", "#x", "@evil.test/"]) | odd_text,
)
headers = st.lists(
    st.tuples(
        st.sampled_from(["Host", "Content-Length", "Transfer-Encoding", "Expect", "Connection",
                         "Upgrade", "X", "Host ", " Host", "Content-Length\0"]) | odd_text,
        st.sampled_from(["origin.test", "evil.test", "chunked", "0", "5", "-1", "1e3", "0x5",
                         "100-continue", "close", "chunked, identity", "9" * 30]) | odd_text,
    ),
    max_size=5,
)  # fmt: skip
bodies = st.sampled_from([b"", b"hello", b"5\r\nhello\r\n0\r\n\r\n", b"0x5\r\nhello\r\n0\r\n\r\n",
                          b"5\r\nhello\r\n0\r\nX: y\r\n\r\nGET http://evil.test/ HTTP/1.1\r\n\r\n",
                          b"\x16\x03\x01\x00\x05\x01", b"\x05"]) | raw_bytes  # fmt: skip


@st.composite
def http_requests(draw: st.DrawFn) -> bytes:
    method, target = draw(methods), draw(targets)
    if method == "CONNECT":
        target = draw(st.sampled_from(HOSTS))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/1.1 x"]))
    lines = [f"{method} {target} {version}"]
    lines += [f"{k}: {v}" for k, v in draw(headers)]
    end = draw(st.sampled_from(["\r\n", "\n", "\r", "\r\n\r\n"]))
    head = end.join(lines) + "\r\n\r\n"
    return head.encode("utf-8", "surrogatepass") + draw(bodies)


@st.composite
def plausible_requests(draw: st.DrawFn) -> bytes:
    """Well-formed requests to every kind of host: the rules, not the parser, decide."""
    host = draw(st.sampled_from(HOSTS[:6]))
    method = draw(st.sampled_from(["GET", "POST", "CONNECT", "HEAD"]))
    target = host if method == "CONNECT" else f"http://{host}/"
    if method == "CONNECT" and ":" not in host:
        target += draw(st.sampled_from([":80", ":443", ":8080"]))
    return f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


@st.composite
def socks_requests(draw: st.DrawFn) -> bytes:
    methods_ = draw(st.binary(max_size=3) | st.just(b"\x00"))
    count = len(methods_) if draw(st.integers(0, 3)) else draw(st.integers(0, 5))
    greeting = b"\x05" + bytes([count]) + methods_
    kind = draw(st.sampled_from([1, 3, 4, 0, 7]))
    name = draw(st.sampled_from([h.split(":")[0] for h in HOSTS]) | odd_text)
    address = {1: bytes([127, 0, 0, 1]), 4: bytes(15) + b"\x01"}.get(
        kind, bytes([len(name.encode("utf-8", "surrogatepass")) % 256])
        + name.encode("utf-8", "surrogatepass")
    )  # fmt: skip
    port = draw(st.sampled_from([80, 443, 8080, 0, 65535])).to_bytes(2, "big")
    command = draw(st.sampled_from([1, 1, 2, 3, 9]))
    request = bytes([draw(st.sampled_from([5, 5, 4])), command, 0, kind]) + address + port
    cut = draw(st.integers(0, 40)) if draw(st.booleans()) else 0
    return (greeting + request)[: len(greeting) + len(request) - cut] + draw(bodies)


@fuzz("egress proxy: HTTP requests", examples=300)
@given(http_requests() | plausible_requests(), st.booleans())
def test_http_requests(monkeypatch: Any, data: bytes, read_only: bool) -> None:
    check(data, read_only, monkeypatch)


@fuzz("egress proxy: SOCKS5 requests", examples=200)
@given(socks_requests() | raw_bytes, st.booleans())
def test_socks5_requests_and_raw_bytes(monkeypatch: Any, data: bytes, read_only: bool) -> None:
    check(data, read_only, monkeypatch)


@fuzz("egress proxy: request head parser", examples=300)
@given(http_requests())
def test_request_head_parsers(data: bytes) -> None:
    """The parsing functions alone: each raises BadRequest (a 4xx/5xx), nothing else."""
    head = data[: data.find(b"\r\n\r\n") + 4] if b"\r\n\r\n" in data else data
    try:
        req = http.parse_request(head)
        http.body_length(req)
        if req.method == "CONNECT":
            http.split_authority(req.target)
        else:
            host, port, path = http.split_absolute(req.target)
            http.check_host_header(req, host, port)
            http.origin_form(req.target, host, port)
            http.upstream_head(req, path, host, port)
    except http.BadRequest as exc:
        assert 400 <= exc.status < 600 and exc.reason
        assert b"\r" not in http.refusal(exc.status, exc.reason).split(b"\r\n\r\n")[1]
