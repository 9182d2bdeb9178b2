"""The egress proxy end to end, on the host's loopback only.

The real ``ProxySession`` (its own thread and event loop, ``server.Proxy`` inside)
serves a listener the test binds on 127.0.0.1:0; the "internet" is an origin server the
test runs on 127.0.0.1:<free port>, reached through the proxy's resolver override
(``hosts``: origin.test → 127.0.0.1). Because that origin is on loopback, these tests
set ``allow_local_hosts=True`` except where the loopback refusal itself is the subject.

No test sends a byte anywhere but 127.0.0.1: every name the proxy is allowed to reach is
mapped by ``hosts``, and names that are not are refused before any resolution. The
origin records every connection byte for byte, so "never reached the origin" is checked
on what the origin really received, not on what the proxy says it did.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from orchestrator.core.spec import READ_METHODS, Egress
from orchestrator.netproxy.session import ProxySession
from tests.origin import make_test_ca

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("loop_kind")]

IO_TIMEOUT = 5.0  # any single wait on a socket
ORIGIN_MAX_CONNECTIONS = 32
ORIGIN_MAX_BYTES = 4 * 1024 * 1024
ORIGIN = "origin.test"

# -- the origin: a strict little HTTP/1.1 server that records everything ------------------


@dataclass
class Seen:
    """One connection the origin accepted."""

    raw: bytearray = field(default_factory=bytearray)  # every byte received
    method: str | None = None
    target: str | None = None
    head: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    extra: bytes = b""  # bytes after the framed request (a smuggled second request)
    error: str | None = None
    sni: str | None = None

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]


class _Reader:
    def __init__(self, conn: socket.socket, seen: Seen) -> None:
        self.conn, self.seen, self.buf = conn, seen, b""

    def _more(self) -> bool:
        if len(self.seen.raw) > ORIGIN_MAX_BYTES:
            raise ValueError("origin byte limit")
        data = self.conn.recv(65536)
        self.seen.raw += data
        self.buf += data
        return bool(data)

    def until(self, marker: bytes) -> bytes | None:
        while marker not in self.buf:
            if not self._more():
                return None
        part, _, self.buf = self.buf.partition(marker)
        return part + marker

    def exactly(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            if not self._more():
                return None
        part, self.buf = self.buf[:n], self.buf[n:]
        return part

    def rest(self) -> bytes:
        with contextlib.suppress(OSError):
            while self._more():
                pass
        part, self.buf = self.buf, b""
        return part


class Origin:
    """HTTP (or, with ``tls``, HTTPS) on 127.0.0.1:<free port>; one thread per
    connection, at most ORIGIN_MAX_CONNECTIONS, every wait bounded by IO_TIMEOUT."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.connections: list[Seen] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            if len(self._threads) >= ORIGIN_MAX_CONNECTIONS:
                break
            try:
                conn, _ = self.sock.accept()
            except OSError:  # the 0.05 s accept timeout, or the socket closed
                continue
            seen = Seen()
            self.connections.append(seen)
            thread = threading.Thread(target=self._serve, args=(conn, seen), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, seen: Seen) -> None:
        conn.settimeout(IO_TIMEOUT)
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
                seen.sni = getattr(conn, "server_hostname", None)
            self._exchange(conn, seen)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            seen.error = seen.error or repr(exc)
        finally:
            conn.close()

    def _exchange(self, conn: socket.socket, seen: Seen) -> None:
        reader = _Reader(conn, seen)
        head = reader.until(b"\r\n\r\n")
        if head is None:
            return
        seen.head = head
        lines = head[:-4].decode("latin-1").split("\r\n")
        seen.method, seen.target = lines[0].split(" ")[:2]
        for line in lines[1:]:
            name, _, value = line.partition(":")
            seen.headers.append((name.strip().lower(), value.strip()))
        coding, length = seen.header("transfer-encoding"), seen.header("content-length")
        if coding:
            body = self._chunked(reader, seen) if coding == ["chunked"] and not length else None
        elif length:
            body = reader.exactly(int(length[0]))
        else:
            body = b""
        if body is None:
            seen.error = seen.error or "request body could not be framed"
            conn.sendall(b"HTTP/1.1 599 Origin Could Not Frame\r\nContent-Length: 0\r\n\r\n")
            return
        seen.body = body
        payload = f"origin {seen.method} {seen.target} {len(body)}\n".encode()
        response = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Origin: yes\r\n"
            b"Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
        )
        conn.sendall(response if seen.method == "HEAD" else response + payload)
        if self.tls is None:
            # Whatever arrives after the framed request is what a proxy let through
            # beyond it. The proxy closes its side once the response is relayed.
            conn.shutdown(socket.SHUT_WR)
            seen.extra = reader.rest()
        # Over TLS the origin just closes after its answer, as Connection: close asks.

    @staticmethod
    def _chunked(reader: _Reader, seen: Seen) -> bytes | None:
        """Strict RFC 9112 chunked decoding: a chunk size is hex digits only."""
        body = b""
        for _ in range(10_000):
            line = reader.until(b"\r\n")
            if line is None:
                return None
            size = line[:-2].split(b";", 1)[0]
            if not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", size):
                seen.error = f"bad chunk size line {line!r}"
                return None
            if int(size, 16) == 0:
                while (trailer := reader.until(b"\r\n")) not in (b"\r\n", None):
                    pass
                return body if trailer is not None else None
            data, crlf = reader.exactly(int(size, 16)), reader.exactly(2)
            if data is None or crlf != b"\r\n":
                seen.error = "chunk data not followed by CRLF"
                return None
            body += data
        return None

    def requests(self) -> list[Seen]:
        return [c for c in self.connections if c.method is not None]

    def settle(self) -> None:
        """Wait (bounded) for every connection so far to finish, so what the origin saw
        is final before a test judges it."""
        deadline = time.monotonic() + IO_TIMEOUT + 2
        time.sleep(0.05)  # a connection the proxy is opening right now
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
            assert not thread.is_alive(), "an origin connection did not finish"

    def received_nothing(self) -> bool:
        self.settle()
        return all(not c.raw for c in self.connections)

    def close(self) -> None:
        self._stop.set()
        self._acceptor.join(2)
        self.sock.close()
        for thread in self._threads:
            thread.join(2)


# -- the proxy ---------------------------------------------------------------------------


@dataclass
class Running:
    port: int
    audit: list[dict[str, Any]]
    session: ProxySession


@contextlib.contextmanager
def running_proxy(egress: Egress) -> Iterator[Running]:
    records: list[dict[str, Any]] = []
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        with ProxySession(egress, run_id="unit-test", audit=records.append) as session:
            session.serve(listener)
            yield Running(port=port, audit=records, session=session)
    finally:
        listener.close()


def make_egress(origin_port: int, **overrides: Any) -> Egress:
    fields: dict[str, Any] = {
        "allow": (f"{ORIGIN}:{origin_port}",),
        "deny": (),
        "methods": READ_METHODS,
        "inspect_tls": False,
        "allow_local_hosts": True,
        "hosts": ((ORIGIN, "127.0.0.1"),),
    }
    fields.update(overrides)
    return Egress(**fields)


@pytest.fixture
def proxy(origin: Origin) -> Iterator[Running]:
    """Read-only network, origin.test:<origin port> allowed."""
    with running_proxy(make_egress(origin.port)) as running:
        yield running


@pytest.fixture
def open_proxy(origin: Origin) -> Iterator[Running]:
    """Any method, origin.test:<origin port> allowed."""
    with running_proxy(make_egress(origin.port, methods=None)) as running:
        yield running


# -- a client, byte by byte --------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name.lower()]
        return found[-1] if found else None


def parse_reply(raw: bytes) -> Reply:
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {raw[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), lines[0]
    headers = [(k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:])]
    return Reply(status=int(lines[0].split(" ")[1]), headers=headers, body=body, raw=raw)


def read_to_eof(sock: socket.socket) -> bytes:
    """Everything until the peer closes; fails if that takes more than IO_TIMEOUT."""
    data = b""
    deadline = time.monotonic() + IO_TIMEOUT
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError):
            return data
        except TimeoutError:
            break
        if not chunk:
            return data
        data += chunk
        assert len(data) < 8 * 1024 * 1024
    raise AssertionError(f"the proxy did not close the connection; got {data[:300]!r}")


def read_head(sock: socket.socket) -> bytes:
    """One response head, byte by byte, so nothing after it is consumed."""
    data = b""
    sock.settimeout(IO_TIMEOUT)
    while not data.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, f"closed after {data!r}"
        data += byte
        assert len(data) < 65536
    return data


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    sock.settimeout(IO_TIMEOUT)
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"closed after {data!r}, wanted {n} bytes"
        data += chunk
    return data


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)


def exchange(port: int, data: bytes) -> bytes:
    with connect(port) as sock:
        sock.sendall(data)
        return read_to_eof(sock)


def ask(port: int, data: bytes) -> Reply:
    return parse_reply(exchange(port, data))


def get(origin: Origin, path: str = "/hello", *, method: str = "GET", host: str = ORIGIN,
        extra: str = "", body: bytes = b"") -> bytes:
    authority = f"{host}:{origin.port}"
    return (
        f"{method} http://{authority}{path} HTTP/1.1\r\nHost: {authority}\r\n{extra}\r\n"
    ).encode("latin-1") + body


def origin_body(method: str, target: str, length: int = 0) -> bytes:
    return f"origin {method} {target} {length}\n".encode()


def assert_refused_by_proxy(reply: Reply, status: int | tuple[int, ...]) -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert reply.status in statuses, reply.raw[:400]
    assert reply.header("X-Codex-Box-Denied"), f"not the proxy's refusal: {reply.raw[:400]!r}"
    assert reply.header("X-Origin") is None


# -- absolute-form HTTP ------------------------------------------------------------------


def test_a_get_to_an_allowed_name_is_relayed_with_the_origins_body(proxy, origin):
    reply = ask(proxy.port, get(origin, "/hello?x=1", extra="Proxy-Connection: keep-alive\r\n"))
    assert reply.status == 200
    assert reply.body == origin_body("GET", "/hello?x=1")
    assert reply.header("X-Origin") == "yes"
    [seen] = origin.requests()
    assert (seen.method, seen.target) == ("GET", "/hello?x=1")  # origin-form upstream
    assert seen.header("host") == [f"{ORIGIN}:{origin.port}"]
    assert seen.header("connection") == ["close"]
    assert seen.header("proxy-connection") == []
    assert proxy.audit == []


def test_the_origins_keep_alive_is_replaced_by_close_towards_the_client(proxy, origin):
    reply = ask(proxy.port, get(origin))
    assert [v for k, v in reply.headers if k.lower() == "connection"] == ["close"]
    assert reply.header("Keep-Alive") is None


def test_http_client_through_the_proxy_gets_the_origins_answer(proxy, origin):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=IO_TIMEOUT)
    try:
        conn.request("GET", f"http://{ORIGIN}:{origin.port}/via-http-client")
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == origin_body("GET", "/via-http-client")
    finally:
        conn.close()


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
def test_other_read_methods_are_relayed_on_a_read_only_network(proxy, origin, method):
    reply = ask(proxy.port, get(origin, "/read", method=method))
    assert reply.status == 200
    assert [(s.method, s.target) for s in origin.requests()] == [(method, "/read")]
    assert proxy.audit == []


def test_a_name_not_allowed_gets_403_with_the_reason_and_one_audit_record(proxy, origin):
    reply = ask(proxy.port, get(origin, "/secret", host="other.test"))
    assert_refused_by_proxy(reply, 403)
    reason = f"other.test:{origin.port} is not in network.allow"
    assert reply.header("X-Codex-Box-Denied") == reason
    assert reason.encode() in reply.body
    assert proxy.audit == [
        {"target": f"other.test:{origin.port}", "domain": "other.test", "method": "GET",
         "reason": reason}
    ]
    assert origin.connections == []


def test_a_denied_name_is_refused_even_when_allowed(origin):
    egress = make_egress(origin.port, allow=(f"{ORIGIN}:*",), deny=(ORIGIN,))
    with running_proxy(egress) as proxy:
        reply = ask(proxy.port, get(origin))
        assert_refused_by_proxy(reply, 403)
        assert f"denied by network.deny '{ORIGIN}'" in str(reply.header("X-Codex-Box-Denied"))
        assert len(proxy.audit) == 1
    assert origin.connections == []


def test_an_ip_literal_is_refused_unless_the_allow_list_names_it(proxy, origin):
    reply = ask(proxy.port, get(origin, host="127.0.0.1"))
    assert_refused_by_proxy(reply, 403)
    assert "is an IP address" in str(reply.header("X-Codex-Box-Denied"))
    assert origin.connections == []


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "get", "TRACE"])
def test_post_is_refused_under_read_only_network(proxy, origin, method):
    reply = ask(proxy.port, get(origin, "/write", method=method,
                                extra="Content-Length: 6\r\n", body=b"secret"))
    assert_refused_by_proxy(reply, 403)
    assert reply.header("X-Codex-Box-Denied") == (
        f"method {method} is not allowed (read-only network: GET, HEAD, OPTIONS)"
    )
    [record] = proxy.audit
    assert record["method"] == method and record["domain"] == ORIGIN
    assert record["target"] == f"{ORIGIN}:{origin.port}"
    assert origin.connections == []


def test_post_with_any_method_allowed_arrives_with_its_content_length_body_intact(
    open_proxy, origin
):
    # Every byte value, CRLFs and something that looks like a second request inside.
    body = bytes(range(256)) * 300 + b"\r\n\r\nPOST /inner HTTP/1.1\r\nHost: x\r\n\r\n"
    request = get(origin, "/upload", method="POST",
                  extra=f"Content-Length: {len(body)}\r\n", body=body)
    reply = ask(open_proxy.port, request)
    assert reply.status == 200
    assert reply.body == origin_body("POST", "/upload", len(body))
    origin.settle()
    [seen] = origin.requests()
    assert seen.body == body
    assert seen.header("content-length") == [str(len(body))]
    assert seen.extra == b""


def test_post_with_a_chunked_body_arrives_intact(open_proxy, origin):
    pieces = [bytes(range(256)) * 10, b"\r\n0\r\n\r\n", b"x", bytes(70_000)]
    chunked = b"".join(
        f"{len(p):x}{';ext=1' if i == 1 else ''}\r\n".encode() + p + b"\r\n"
        for i, p in enumerate(pieces)
    ) + b"0\r\nX-Trailer: t\r\n\r\n"
    request = get(origin, "/chunked", method="POST",
                  extra="Transfer-Encoding: chunked\r\n", body=chunked)
    reply = ask(open_proxy.port, request)
    assert reply.status == 200, reply.raw[:300]
    origin.settle()
    [seen] = origin.requests()
    assert seen.body == b"".join(pieces)
    assert seen.header("transfer-encoding") == ["chunked"]
    assert seen.extra == b""


def test_a_body_announced_with_expect_100_continue_arrives_intact(open_proxy, origin):
    with connect(open_proxy.port) as sock:
        sock.sendall(get(origin, "/expect", method="PUT",
                         extra="Content-Length: 5\r\nExpect: 100-continue\r\n"))
        assert read_head(sock).startswith(b"HTTP/1.1 100 ")
        sock.sendall(b"hello")
        reply = parse_reply(read_to_eof(sock))
    assert reply.status == 200
    [seen] = origin.requests()
    assert seen.body == b"hello"
    assert seen.header("expect") == []


def test_an_h2c_upgrade_is_not_forwarded_to_the_origin(open_proxy, origin):
    extra = (
        "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        "HTTP2-Settings: AAMAAABkAAQAAP__\r\n"
    )
    reply = ask(open_proxy.port, get(origin, "/h2c", extra=extra))
    assert reply.status == 200
    [seen] = origin.requests()
    assert seen.header("upgrade") == []
    assert seen.header("connection") == ["close"]


# -- request smuggling and other ambiguous framing ---------------------------------------

SMUGGLING = {
    "transfer-encoding and content-length": (
        "Transfer-Encoding: chunked\r\nContent-Length: 30\r\n", 400),
    "content-length and transfer-encoding": (
        "Content-Length: 30\r\nTransfer-Encoding: chunked\r\n", 400),
    "gzip then chunked": ("Transfer-Encoding: gzip, chunked\r\n", (400, 501)),
    "chunked twice": ("Transfer-Encoding: chunked, chunked\r\n", (400, 501)),
    "two transfer-encoding headers": (
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", (400, 501)),
    "a coding that only looks like chunked": ("Transfer-Encoding: xchunked\r\n", (400, 501)),
    "space before the colon": ("Transfer-Encoding : chunked\r\n", 400),
    "obs-fold continuation line": ("X-Folded: a\r\n b\r\n", 400),
    "obs-fold hiding transfer-encoding": ("X-Folded: a\r\n\tTransfer-Encoding: chunked\r\n", 400),
    "two different content-lengths": ("Content-Length: 3\r\nContent-Length: 30\r\n", 400),
    "a list content-length": ("Content-Length: 30, 3\r\n", 400),
    "a signed content-length": ("Content-Length: +30\r\n", 400),
    "a header without a colon": ("Transfer-Encoding chunked\r\n", 400),
}


@pytest.mark.parametrize("case", sorted(SMUGGLING))
def test_ambiguous_framing_is_refused_and_never_reaches_the_origin(open_proxy, origin, case):
    extra, status = SMUGGLING[case]
    body = b"0\r\n\r\nPOST /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    reply = ask(open_proxy.port, get(origin, "/front", method="POST", extra=extra, body=body))
    assert_refused_by_proxy(reply, status)
    assert origin.received_nothing(), [bytes(c.raw[:200]) for c in origin.connections]
    # A framing refusal is audited too.
    assert len(open_proxy.audit) == 1 and open_proxy.audit[0]["reason"]


def test_two_host_headers_are_refused_and_never_reach_the_origin(open_proxy, origin):
    request = get(origin, extra="Host: other.test\r\n")
    reply = ask(open_proxy.port, request)
    assert_refused_by_proxy(reply, 400)
    assert "more than one host header" in str(reply.header("X-Codex-Box-Denied"))
    assert origin.received_nothing()


@pytest.mark.parametrize("host_header", ["other.test", "other.test:{port}", "origin.test:80",
                                         "origin.test:1", "evil@origin.test:{port}"])
def test_a_host_header_that_does_not_match_the_url_is_refused(open_proxy, origin, host_header):
    request = (
        f"GET http://{ORIGIN}:{origin.port}/h HTTP/1.1\r\n"
        f"Host: {host_header.format(port=origin.port)}\r\n\r\n"
    ).encode()
    reply = ask(open_proxy.port, request)
    assert_refused_by_proxy(reply, 400)
    assert origin.received_nothing()


def test_a_pipelined_second_request_never_reaches_the_origin(open_proxy, origin):
    second = (
        f"POST http://{ORIGIN}:{origin.port}/second HTTP/1.1\r\nHost: {ORIGIN}:{origin.port}\r\n"
        "Content-Length: 4\r\n\r\nboom"
    ).encode()
    raw = exchange(open_proxy.port, get(origin, "/first") + second)
    assert raw.count(b"HTTP/1.1 ") == 1, raw
    assert parse_reply(raw).body == origin_body("GET", "/first")
    origin.settle()
    [seen] = origin.connections
    assert (seen.method, seen.target) == ("GET", "/first")
    assert seen.header("connection") == ["close"]
    assert seen.extra == b"", seen.extra
    assert b"/second" not in seen.raw


def test_only_the_framed_body_is_relayed(open_proxy, origin):
    # Content-Length says 4; whatever the client sends after it is not the origin's.
    request = get(origin, "/framed", method="POST", extra="Content-Length: 4\r\n",
                  body=b"bodyGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = ask(open_proxy.port, request)
    assert reply.status == 200
    origin.settle()
    [seen] = origin.connections
    assert seen.body == b"body"
    assert seen.extra == b""
    assert b"/after" not in seen.raw


def test_the_pipelined_request_under_read_only_never_reaches_the_origin(proxy, origin):
    second = (
        f"DELETE http://{ORIGIN}:{origin.port}/all HTTP/1.1\r\nHost: {ORIGIN}:{origin.port}\r\n\r\n"
    ).encode()
    raw = exchange(proxy.port, get(origin, "/first") + second)
    assert raw.count(b"HTTP/1.1 ") == 1
    origin.settle()
    assert [(s.method, s.target) for s in origin.requests()] == [("GET", "/first")]
    assert b"DELETE" not in origin.connections[0].raw


@pytest.mark.parametrize(
    "line",
    [
        "GET https://{host}/secure HTTP/1.1",
        "GET HTTPS://{host}/secure HTTP/1.1",
        "GET ftp://{host}/file HTTP/1.1",
        "GET /origin-form HTTP/1.1",
        "GET //{host}/scheme-relative HTTP/1.1",
        "GET  http://{host}/two-spaces HTTP/1.1",
        "GET http://{host}/no-version",
        "GET http://{host}/h2 HTTP/2.0",
        "GET http://{host}:bad/port HTTP/1.1",
    ],
)
def test_a_request_line_the_proxy_cannot_judge_is_refused_with_400(open_proxy, origin, line):
    authority = f"{ORIGIN}:{origin.port}"
    request = (line.format(host=authority) + f"\r\nHost: {authority}\r\n\r\n").encode()
    reply = ask(open_proxy.port, request)
    assert_refused_by_proxy(reply, 400)
    assert origin.received_nothing()


def test_https_absolute_form_is_refused_and_points_at_connect(proxy, origin):
    authority = f"{ORIGIN}:{origin.port}"
    reply = ask(proxy.port, f"GET https://{authority}/ HTTP/1.1\r\nHost: {authority}\r\n\r\n"
                .encode())
    assert_refused_by_proxy(reply, 400)
    assert "CONNECT" in str(reply.header("X-Codex-Box-Denied"))
    assert origin.received_nothing()


def test_an_oversized_request_head_is_refused_with_431(proxy, origin):
    filler = "X-Fill: " + "a" * 1000 + "\r\n"
    request = get(origin, extra=filler * 70)  # ~70 KiB, more than the 64 KiB limit
    assert len(request) > 64 * 1024
    reply = ask(proxy.port, request)
    assert_refused_by_proxy(reply, 431)
    assert origin.received_nothing()


def test_an_oversized_head_without_an_end_is_refused_with_431(proxy, origin):
    with connect(proxy.port) as sock:
        sock.sendall(b"GET http://" + b"a" * (80 * 1024))
        reply = parse_reply(read_to_eof(sock))
    assert_refused_by_proxy(reply, 431)
    assert origin.connections == []


@pytest.mark.parametrize(
    "injected",
    ["X-Note: a\nX-Injected: yes", "X-Note: a\rX-Injected: yes", "X-Note: a\x00b"],
    ids=["bare-LF", "bare-CR", "NUL"],
)
def test_a_cr_lf_or_nul_inside_a_header_value_never_reaches_the_origin(
    open_proxy, origin, injected
):
    """RFC 9110 §5.5: a recipient of CR, LF or NUL in a field value MUST reject the
    message or replace them with SP before forwarding. Forwarded raw, a bare LF is a
    line break to the many origins that accept bare LF: a header the proxy never
    judged (a second Host, a Transfer-Encoding) appears on the origin's side."""
    reply = ask(open_proxy.port, get(origin, "/inj", extra=injected + "\r\n"))
    origin.settle()
    for seen in origin.connections:
        head = seen.head
        assert b"\x00" not in head
        assert re.search(rb"[^\r]\n|\r[^\n]", head) is None, head
    if reply.header("X-Codex-Box-Denied"):
        assert reply.status == 400


@pytest.mark.parametrize(
    ("size_line", "data"),
    [("0x5", b"hello"), ("1_0", b"0123456789abcdef"), ("+5", b"hello")],
)
def test_a_chunk_size_that_is_not_plain_hex_is_refused(open_proxy, origin, size_line, data):
    """RFC 9112: chunk-size = 1*HEXDIG. Python's int(x, 16) also takes "0x", "_", a
    sign and spaces; forwarded verbatim, "0x5" is 0 (end of body) and "1_0" is 1 to
    an origin that reads hex digits until the first other character: the proxy and
    the origin then disagree on where the body ends."""
    body = f"{size_line}\r\n".encode() + data + b"\r\n0\r\n\r\n"
    request = get(origin, "/chunks", method="POST", extra="Transfer-Encoding: chunked\r\n",
                  body=body)
    reply = ask(open_proxy.port, request)
    assert_refused_by_proxy(reply, 400)
    origin.settle()
    assert all(size_line.encode() + b"\r\n" not in c.raw for c in origin.connections)


def test_chunk_data_not_followed_by_crlf_is_refused(open_proxy, origin):
    body = b"5\r\nhelloXY0\r\n\r\n"
    request = get(origin, "/chunks", method="POST", extra="Transfer-Encoding: chunked\r\n",
                  body=body)
    reply = ask(open_proxy.port, request)
    assert_refused_by_proxy(reply, 400)
    origin.settle()
    assert all(b"helloXY" not in c.raw for c in origin.connections)


@pytest.mark.parametrize(
    "request_text",
    [
        "POST http://{a}/sup HTTP/1.1\r\nHost: {a}\r\nContent-Length: \xb2\r\n\r\nab",
        "CONNECT origin.test:\xb2 HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["content-length", "connect-port"],
)
def test_digits_that_are_not_ascii_are_refused_with_400_and_audited(
    open_proxy, origin, request_text
):
    """'²' (latin-1 0xB2) passes str.isdigit() but int() rejects it: the proxy must still
    answer 400 and write its audit record, not drop the connection on a ValueError."""
    request = request_text.format(a=f"{ORIGIN}:{origin.port}").encode("latin-1")
    raw = exchange(open_proxy.port, request)
    assert raw, "the proxy closed the connection without an answer"
    assert_refused_by_proxy(parse_reply(raw), 400)
    assert len(open_proxy.audit) == 1
    assert origin.received_nothing()


# -- CONNECT -----------------------------------------------------------------------------


def open_tunnel(proxy_port: int, authority: str) -> socket.socket:
    sock = connect(proxy_port)
    sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    head = read_head(sock)
    assert head == b"HTTP/1.1 200 Connection established\r\n\r\n", head
    return sock


def inner(origin: Origin, path: str, *, method: str = "GET", host: str | None = None,
          extra: str = "") -> bytes:
    authority = host or f"{ORIGIN}:{origin.port}"
    return f"{method} {path} HTTP/1.1\r\nHost: {authority}\r\n{extra}\r\n".encode()


def test_a_get_inside_a_connect_tunnel_is_relayed(proxy, origin):
    with open_tunnel(proxy.port, f"{ORIGIN}:{origin.port}") as sock:
        sock.sendall(inner(origin, "/tunnelled"))
        reply = parse_reply(read_to_eof(sock))
    assert reply.status == 200
    assert reply.body == origin_body("GET", "/tunnelled")
    assert [(s.method, s.target) for s in origin.requests()] == [("GET", "/tunnelled")]
    assert proxy.audit == []


def test_a_connect_tunnel_cannot_carry_a_plain_post_on_a_read_only_network(proxy, origin):
    with open_tunnel(proxy.port, f"{ORIGIN}:{origin.port}") as sock:
        sock.sendall(inner(origin, "/tunnel-post", method="POST",
                           extra="Content-Length: 6\r\n") + b"secret")
        reply = parse_reply(read_to_eof(sock))
    assert_refused_by_proxy(reply, 403)
    assert "method POST is not allowed" in str(reply.header("X-Codex-Box-Denied"))
    assert proxy.audit == [
        {"target": f"{ORIGIN}:{origin.port}", "domain": ORIGIN, "method": "POST",
         "reason": "method POST is not allowed (read-only network: GET, HEAD, OPTIONS)"}
    ]
    assert origin.connections == []


def test_a_request_inside_a_tunnel_must_name_the_tunnels_host(proxy, origin):
    with open_tunnel(proxy.port, f"{ORIGIN}:{origin.port}") as sock:
        sock.sendall(inner(origin, "/elsewhere", host=f"other.test:{origin.port}"))
        reply = parse_reply(read_to_eof(sock))
    assert_refused_by_proxy(reply, 400)
    assert origin.received_nothing()


def test_a_request_inside_a_tunnel_cannot_name_another_site_by_absolute_form(proxy, origin):
    """An origin that receives absolute-form MUST use its authority and ignore Host
    (RFC 9112 §3.2.2; nginx picks its virtual server that way). Forwarded verbatim, a
    tunnel to an allowed name on a shared front end reaches any site behind it."""
    target = f"http://other.test:{origin.port}/elsewhere"
    with open_tunnel(proxy.port, f"{ORIGIN}:{origin.port}") as sock:
        sock.sendall(inner(origin, target))
        read_to_eof(sock)
    origin.settle()
    assert [s.target for s in origin.requests() if "other.test" in str(s.target)] == []


def test_a_pipelined_request_inside_a_tunnel_never_reaches_the_origin(proxy, origin):
    with open_tunnel(proxy.port, f"{ORIGIN}:{origin.port}") as sock:
        sock.sendall(inner(origin, "/one") + inner(origin, "/two", method="DELETE"))
        raw = read_to_eof(sock)
    assert raw.count(b"HTTP/1.1 ") == 1
    origin.settle()
    assert [(s.method, s.target) for s in origin.requests()] == [("GET", "/one")]
    assert origin.connections[0].extra == b""


def test_connect_to_a_name_not_allowed_is_refused_with_403(proxy, origin):
    reply = ask(proxy.port, f"CONNECT other.test:{origin.port} HTTP/1.1\r\n\r\n".encode())
    assert_refused_by_proxy(reply, 403)
    assert proxy.audit == [
        {"target": f"other.test:{origin.port}", "domain": "other.test", "method": "CONNECT",
         "reason": f"other.test:{origin.port} is not in network.allow"}
    ]
    assert origin.connections == []


def test_an_opaque_tunnel_carries_any_bytes_when_methods_are_not_restricted(open_proxy, origin):
    # Not read-only: the tunnel is not sniffed, a POST inside is just bytes.
    with open_tunnel(open_proxy.port, f"{ORIGIN}:{origin.port}") as sock:
        sock.sendall(inner(origin, "/opaque", method="POST", extra="Content-Length: 2\r\n")
                     + b"ok")
        reply = parse_reply(read_to_eof(sock))
    assert reply.status == 200
    origin.settle()
    assert [s.body for s in origin.requests()] == [b"ok"]


# -- SOCKS5 ------------------------------------------------------------------------------


def socks(proxy_port: int, name: bytes, port: int, *, command: int = 1,
          atyp: int = 3) -> tuple[socket.socket, bytes]:
    sock = connect(proxy_port)
    sock.sendall(b"\x05\x01\x00")
    assert recv_exactly(sock, 2) == b"\x05\x00"
    address = bytes([len(name)]) + name if atyp == 3 else name
    sock.sendall(bytes([5, command, 0, atyp]) + address + port.to_bytes(2, "big"))
    return sock, recv_exactly(sock, 10)


def test_socks5_to_an_allowed_name_connects_and_data_flows(open_proxy, origin):
    sock, reply = socks(open_proxy.port, ORIGIN.encode(), origin.port)
    with sock:
        assert reply[:2] == b"\x05\x00"
        sock.sendall(inner(origin, "/socks"))
        answer = parse_reply(read_to_eof(sock))
    assert answer.status == 200
    assert answer.body == origin_body("GET", "/socks")
    assert [s.target for s in origin.requests()] == ["/socks"]


def test_socks5_on_a_read_only_network_relays_a_get(proxy, origin):
    sock, reply = socks(proxy.port, ORIGIN.encode(), origin.port)
    with sock:
        assert reply[1] == 0
        sock.sendall(inner(origin, "/socks-ro"))
        assert parse_reply(read_to_eof(sock)).status == 200


def test_socks5_on_a_read_only_network_cannot_carry_a_plain_post(proxy, origin):
    sock, reply = socks(proxy.port, ORIGIN.encode(), origin.port)
    with sock:
        assert reply[1] == 0
        sock.sendall(inner(origin, "/socks-post", method="POST", extra="Content-Length: 1\r\n")
                     + b"x")
        answer = parse_reply(read_to_eof(sock))
    assert_refused_by_proxy(answer, 403)
    assert [r["method"] for r in proxy.audit] == ["POST"]
    assert origin.connections == []


def test_socks5_to_a_name_not_allowed_gets_reply_2_and_an_audit_record(proxy, origin):
    sock, reply = socks(proxy.port, b"other.test", origin.port)
    with sock:
        assert reply[:2] == b"\x05\x02"
        assert read_to_eof(sock) == b""
    assert proxy.audit == [
        {"target": f"other.test:{origin.port}", "domain": "other.test", "method": "CONNECT",
         "reason": f"other.test:{origin.port} is not in network.allow"}
    ]
    assert origin.connections == []


def test_socks5_to_an_ip_address_not_listed_gets_reply_2(proxy, origin):
    sock, reply = socks(proxy.port, socket.inet_aton("127.0.0.1"), origin.port, atyp=1)
    with sock:
        assert reply[1] == 2
    assert "is an IP address" in proxy.audit[0]["reason"]
    assert origin.connections == []


def test_socks5_bind_is_refused_with_reply_7(proxy, origin):
    sock, reply = socks(proxy.port, ORIGIN.encode(), origin.port, command=2)
    with sock:
        assert reply[1] == 7
    assert [r["reason"] for r in proxy.audit] == ["SOCKS command 2 is not supported"]
    assert origin.connections == []


def test_socks5_udp_associate_is_refused_with_reply_7(proxy, origin):
    sock, reply = socks(proxy.port, ORIGIN.encode(), origin.port, command=3)
    with sock:
        assert reply[1] == 7
    assert origin.connections == []


def test_socks5_without_the_no_auth_method_is_refused(proxy, origin):
    with connect(proxy.port) as sock:
        sock.sendall(b"\x05\x01\x02")  # username/password only
        assert read_to_eof(sock) == b"\x05\xff"
    assert origin.connections == []


# -- local addresses behind allowed names ------------------------------------------------


@pytest.mark.parametrize("address", ["127.0.0.1", "::ffff:127.0.0.1"])
def test_a_name_mapped_to_loopback_is_refused_without_allow_local_hosts(origin, address):
    egress = make_egress(origin.port, allow_local_hosts=False, hosts=((ORIGIN, address),))
    with running_proxy(egress) as proxy:
        reply = ask(proxy.port, get(origin, "/local"))
        assert_refused_by_proxy(reply, 403)
        reason = str(reply.header("X-Codex-Box-Denied"))
        assert reason.startswith(f"{ORIGIN} resolves to ") and "loopback" in reason
        assert [r["domain"] for r in proxy.audit] == [ORIGIN]

        tunnel = ask(proxy.port, f"CONNECT {ORIGIN}:{origin.port} HTTP/1.1\r\n\r\n".encode())
        assert_refused_by_proxy(tunnel, 403)
        sock, socks_reply = socks(proxy.port, ORIGIN.encode(), origin.port)
        sock.close()
        assert socks_reply[1] == 2
        assert len(proxy.audit) == 3
    assert origin.received_nothing()


# -- inspect_tls -------------------------------------------------------------------------


@pytest.fixture
def tls_origin(tmp_path: Path) -> Iterator[tuple[Origin, Path]]:
    ca = make_test_ca(tmp_path / "origin-ca", [ORIGIN])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ca.cert, ca.key)
    server = Origin(tls=context)
    try:
        yield server, ca.ca
    finally:
        server.close()


def inspecting_egress(origin: Origin, ca_file: Path, upstream_ca: Path | None) -> Egress:
    return make_egress(origin.port, inspect_tls=True, ca_file=str(ca_file),
                       upstream_ca=str(upstream_ca) if upstream_ca else None)


def tls_tunnel(proxy_port: int, origin: Origin, ca_file: Path) -> ssl.SSLSocket:
    """CONNECT, then TLS with a client that trusts the session CA and nothing else."""
    sock = open_tunnel(proxy_port, f"{ORIGIN}:{origin.port}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(ca_file))
    return context.wrap_socket(sock, server_hostname=ORIGIN)


def test_inspect_tls_writes_the_session_ca_while_running_and_deletes_it_after(tls_origin,
                                                                               tmp_path):
    origin, origin_ca = tls_origin
    ca_file = tmp_path / "session" / "egress-ca.pem"
    with running_proxy(inspecting_egress(origin, ca_file, origin_ca)):
        cert = x509.load_pem_x509_certificate(ca_file.read_bytes())
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert constraints.ca and constraints.path_length == 0
        assert "unit-test" in cert.subject.rfc4514_string()
        assert b"PRIVATE KEY" not in ca_file.read_bytes()
    assert not ca_file.exists()
    assert not ca_file.parent.exists()
    assert tmp_path.exists()


def test_inspect_tls_relays_a_get_and_presents_a_leaf_from_the_session_ca(tls_origin,
                                                                          tmp_path):
    origin, origin_ca = tls_origin
    ca_file = tmp_path / "session" / "egress-ca.pem"
    with running_proxy(inspecting_egress(origin, ca_file, origin_ca)) as proxy:
        session_ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
        with tls_tunnel(proxy.port, origin, ca_file) as tls:
            leaf = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
            tls.sendall(inner(origin, "/inspected"))
            reply = parse_reply(read_to_eof(tls))
        assert proxy.audit == []
    assert leaf.issuer == session_ca.subject
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [ORIGIN]
    leaf.verify_directly_issued_by(session_ca)  # signed by it, not merely named after it
    assert reply.status == 200
    assert reply.body == origin_body("GET", "/inspected")
    origin.settle()
    [seen] = origin.requests()
    assert (seen.method, seen.target) == ("GET", "/inspected")


def test_inspect_tls_refuses_a_post_inside_https_and_the_origin_sees_nothing(tls_origin,
                                                                            tmp_path):
    origin, origin_ca = tls_origin
    ca_file = tmp_path / "session" / "egress-ca.pem"
    with running_proxy(inspecting_egress(origin, ca_file, origin_ca)) as proxy:
        with tls_tunnel(proxy.port, origin, ca_file) as tls:
            tls.sendall(inner(origin, "/inspected-post", method="POST",
                              extra="Content-Length: 6\r\n") + b"secret")
            reply = parse_reply(read_to_eof(tls))
        assert_refused_by_proxy(reply, 403)
        assert [(r["method"], r["domain"]) for r in proxy.audit] == [("POST", ORIGIN)]
    assert origin.connections == []


def test_inspect_tls_verifies_the_origin_certificate_upstream(tls_origin, tmp_path):
    # Without upstream_ca the origin's test CA is trusted by no one: the proxy must not
    # hand the client a response from an origin it could not verify.
    origin, _origin_ca = tls_origin
    ca_file = tmp_path / "session" / "egress-ca.pem"
    with (
        running_proxy(inspecting_egress(origin, ca_file, None)) as proxy,
        tls_tunnel(proxy.port, origin, ca_file) as tls,
    ):
        tls.sendall(inner(origin, "/unverified"))
        reply = parse_reply(read_to_eof(tls))
    assert_refused_by_proxy(reply, 502)
    origin.settle()
    assert origin.requests() == []


def test_inspect_tls_refuses_a_client_that_does_not_speak_tls_in_the_tunnel(tls_origin,
                                                                           tmp_path):
    origin, origin_ca = tls_origin
    ca_file = tmp_path / "session" / "egress-ca.pem"
    with (
        running_proxy(inspecting_egress(origin, ca_file, origin_ca)) as proxy,
        open_tunnel(proxy.port, f"{ORIGIN}:{origin.port}") as sock,
    ):
        sock.sendall(inner(origin, "/plain-in-tls-tunnel", method="POST",
                           extra="Content-Length: 1\r\n") + b"x")
        raw = read_to_eof(sock)
    assert b"HTTP/1.1 200" not in raw
    assert origin.received_nothing()
