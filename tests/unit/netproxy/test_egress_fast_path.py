"""The proxy's callback path (``connection``) and its shared deadlines, on loopback only.

A request without a body is read, judged and relayed by callbacks; everything else is
handed to ``Proxy.handle`` with the bytes read so far. These tests pin what that split
must not change: where the head limit falls, the head deadline counted from the accept
(also for a connection handed over), a half-closed client, flow control towards a slow
reader, an origin that answers badly, a connect that never completes, and that every
connection gives its slot back. Every origin here is a thread of the test on 127.0.0.1,
bounded in connections, bytes and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.netproxy import dial as dial_module
from orchestrator.netproxy import server as server_module
from orchestrator.netproxy import session as session_module
from orchestrator.netproxy.deadlines import Deadlines
from orchestrator.netproxy.http import MAX_HEAD, BadRequest, parse_request
from tests.unit.netproxy.test_egress_proxy import (
    IO_TIMEOUT,
    ORIGIN,
    ask,
    assert_refused_by_proxy,
    connect,
    get,
    make_egress,
    origin_body,
    parse_reply,
    read_to_eof,
    running_proxy,
)

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("loop_kind")]


class RawOrigin:
    """One connection on 127.0.0.1: reads the request head, sends ``answer``, closes."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(IO_TIMEOUT)
        self.port: int = self.sock.getsockname()[1]
        self.sent = threading.Event()  # all of ``answer`` went into the kernel
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(IO_TIMEOUT)
            head = b""
            try:
                while b"\r\n\r\n" not in head and len(head) < 1 << 20:
                    data = conn.recv(65536)
                    if not data:
                        return
                    head += data
                conn.sendall(self.answer)
                self.sent.set()
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        self.thread.join(IO_TIMEOUT)


def _request(port: int) -> bytes:
    return f"GET http://{ORIGIN}:{port}/x HTTP/1.1\r\nHost: {ORIGIN}:{port}\r\n\r\n".encode()


# -- the head ----------------------------------------------------------------------------


@given(st.lists(st.text(alphabet="Ab:\r\n\0 ", max_size=12), max_size=5))
def test_a_head_is_refused_for_a_bare_cr_lf_or_nul_in_any_line_and_only_for_that(lines):
    # parse_request counts CRs and LFs instead of scanning each line: the same verdict.
    head = "\r\n".join(["GET http://a.test/ HTTP/1.1", *lines]) + "\r\n\r\n"
    bare = any(c in line for line in head.split("\r\n") for c in "\r\n\0")
    try:
        parse_request(head.encode("latin-1"))
    except BadRequest as exc:
        assert ("bare CR, LF or NUL" in exc.reason) == bare
    else:
        assert not bare


def test_a_head_that_arrives_byte_by_byte_is_judged_and_relayed(origin):
    with running_proxy(make_egress(origin.port)) as proxy, connect(proxy.port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in get(origin, "/slow"):  # the CRLFCRLF straddles reads every way
            sock.sendall(bytes([byte]))
            time.sleep(0.001)
        reply = parse_reply(read_to_eof(sock))
    assert reply.status == 200
    assert reply.body == origin_body("GET", "/slow")


@pytest.mark.parametrize("with_body", [False, True], ids=["callbacks", "streams"])
def test_the_head_limit_falls_on_the_same_byte_on_either_path(origin, with_body):
    # Proxy.handle's reads: one byte, then a head whose CRLFCRLF starts within MAX_HEAD
    # bytes. A request without a body is read by callbacks, one with a body by streams.
    extra, body = ("Content-Length: 1\r\n", b"x") if with_body else ("", b"")
    base = get(origin, "/limit", method="PUT", extra=extra + "X-Pad: ")
    with running_proxy(make_egress(origin.port, methods=None)) as proxy:
        for separator_at, status in ((MAX_HEAD + 1, 200), (MAX_HEAD + 2, 431)):
            pad = separator_at - (len(base) - 2)  # get() ends the head with CRLF CRLF
            request = base[:-2] + b"a" * pad + b"\r\n\r\n" + body
            assert request.index(b"\r\n\r\n") == separator_at
            reply = ask(proxy.port, request)
            assert reply.status == status, (separator_at, reply.raw[:200])
    assert [s.target for s in origin.requests()] == ["/limit"]


def test_a_client_that_half_closes_after_its_get_still_gets_the_answer(origin):
    with running_proxy(make_egress(origin.port)) as proxy, connect(proxy.port) as sock:
        sock.sendall(get(origin, "/half"))
        sock.shutdown(socket.SHUT_WR)
        reply = parse_reply(read_to_eof(sock))
    assert reply.status == 200
    assert reply.body == origin_body("GET", "/half")


# -- the head deadline, counted from the accept -----------------------------------------


def _closed_after(sock: socket.socket, started: float) -> float:
    """Seconds from ``started`` until the proxy closed ``sock`` without a word."""
    assert read_to_eof(sock) == b""
    return time.monotonic() - started


def test_a_head_that_never_ends_loses_its_connection_at_the_deadline(origin, monkeypatch):
    monkeypatch.setattr(server_module, "HEAD_TIMEOUT_S", 2.0)
    with running_proxy(make_egress(origin.port)) as proxy:
        started = time.monotonic()
        with connect(proxy.port) as sock:
            sock.sendall(b"GET http://origin.test/ HTTP/1.1\r\nX-Slow: ")
            assert 1.5 <= _closed_after(sock, started) < IO_TIMEOUT
    assert origin.connections == []


def test_a_connection_handed_to_the_streams_keeps_the_accept_time_deadline(origin, monkeypatch):
    # A SOCKS greeting is handed over at its first byte: the deadline does not restart.
    monkeypatch.setattr(server_module, "HEAD_TIMEOUT_S", 2.0)
    with running_proxy(make_egress(origin.port)) as proxy:
        started = time.monotonic()
        with connect(proxy.port) as sock:
            time.sleep(1.5)
            sock.sendall(b"\x05\x01")  # one method announced, never sent
            assert _closed_after(sock, started) < 3.0  # a restarted deadline: 3.5 s
    assert origin.connections == []


# -- the answer ---------------------------------------------------------------------------


def test_a_large_answer_reaches_a_slow_reader_whole():
    # More than the kernel buffers between the proxy and a reader that waits: the
    # proxy must stop reading the origin, then go on when the reader does.
    body = hashlib.sha256(b"seed").digest() * (3 << 18)  # 24 MiB, not one repeated byte
    answer = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    upstream = RawOrigin(answer)
    received = bytearray()
    try:
        with running_proxy(make_egress(upstream.port)) as proxy:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            sock.settimeout(IO_TIMEOUT)
            with sock:
                sock.connect(("127.0.0.1", proxy.port))
                sock.sendall(_request(upstream.port))
                time.sleep(0.5)  # the proxy's buffer towards us fills: it stops reading
                # ...so the origin is still sending: the answer is not piling up in
                # codex-box's memory (only kernel buffers, a few MiB, lie in between).
                assert not upstream.sent.is_set()
                deadline = time.monotonic() + 20
                while len(received) <= len(answer) + 100 and time.monotonic() < deadline:
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        break
                    received += chunk
    finally:
        upstream.close()
    reply = parse_reply(bytes(received))
    assert reply.status == 200
    assert reply.header("Connection") == "close"
    assert hashlib.sha256(reply.body).digest() == hashlib.sha256(body).digest()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * (MAX_HEAD + 10),  # no end in sight
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEAD + b"\r\n\r\nbody",  # ends too late
        b"HTTP/1.1 200 OK\r\nContent-Le",  # the origin closes mid-head
    ],
    ids=["endless", "oversized", "cut"],
)
def test_an_origin_head_the_proxy_cannot_relay_ends_the_connection_without_an_answer(answer):
    upstream = RawOrigin(answer)
    try:
        with running_proxy(make_egress(upstream.port)) as proxy, connect(proxy.port) as sock:
            sock.sendall(_request(upstream.port))
            assert read_to_eof(sock) == b""
    finally:
        upstream.close()


# -- connecting ---------------------------------------------------------------------------


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A port on 127.0.0.1 whose connects never complete: its accept queue (backlog 0)
    holds one connection nobody accepts, so the kernel drops every further SYN."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    try:
        yield port
    finally:
        filler.close()
        listener.close()


def test_a_connect_that_never_completes_is_given_up_with_502(monkeypatch):
    monkeypatch.setattr(dial_module, "CONNECT_TIMEOUT_S", 0.5)
    with unanswered_port() as port, running_proxy(make_egress(port)) as proxy:
        started = time.monotonic()
        reply = ask(proxy.port, _request(port))
        assert time.monotonic() - started < IO_TIMEOUT
    assert_refused_by_proxy(reply, 502)
    assert f"cannot connect to {ORIGIN}:{port}" in str(reply.header("X-Codex-Box-Denied"))
    assert proxy.audit == []  # a connect failure is no rule's refusal


def test_the_end_of_the_run_ends_a_pending_connect_quietly_and_at_once():
    with unanswered_port() as port:
        with running_proxy(make_egress(port)) as proxy:  # CONNECT_TIMEOUT_S: 10 s
            sock = connect(proxy.port)
            sock.sendall(_request(port))
            time.sleep(0.3)  # the proxy is connecting now
            closing = time.monotonic()
        closed_in = time.monotonic() - closing
        with sock:
            assert read_to_eof(sock) == b""  # no 502: the run ended, not the attempt
        assert closed_in < 5.0


# -- slots ---------------------------------------------------------------------------------


def test_every_kind_of_ending_gives_the_connection_slot_back(origin, monkeypatch):
    monkeypatch.setattr(session_module, "MAX_CLIENTS", 2)
    endings = [
        get(origin, "/ok"),  # relayed by callbacks
        get(origin, "/no", host="other.test"),  # refused by callbacks (403)
        get(origin, "/bad", extra="Host: a\r\n"),  # refused by Proxy.handle (400)
        get(origin, "/post", method="POST", extra="Content-Length: 2\r\n", body=b"hi"),
        f"CONNECT {ORIGIN}:{origin.port} HTTP/1.1\r\n\r\n".encode(),  # a tunnel, then EOF
    ]
    with running_proxy(make_egress(origin.port, methods=None)) as proxy:
        for _ in range(3):  # past the cap of 2 if any ending kept its slot
            for request in endings:
                with connect(proxy.port) as sock:
                    sock.sendall(request)
                    if request.startswith(b"CONNECT"):
                        sock.shutdown(socket.SHUT_WR)
                    raw = read_to_eof(sock)
                assert raw.startswith(b"HTTP/1.1 "), (request[:40], raw[:80])
                time.sleep(0.02)  # the proxy's side of the close


# -- the shared deadlines ----------------------------------------------------------------


def test_deadlines_expire_in_order_and_a_cleared_one_never_fires(loop_kind):
    loop = session_module.new_loop()
    fired: list[str] = []
    deadlines = Deadlines(0.05)

    async def scenario() -> None:
        deadlines.add(loop, lambda: fired.append("a"))
        b = deadlines.add(loop, lambda: fired.append("b"))
        await asyncio.sleep(0.01)
        deadlines.add(loop, lambda: fired.append("c"))
        deadlines.clear(b)
        await asyncio.sleep(0.2)
        assert fired == ["a", "c"] and len(deadlines) == 0
        # Everything cleared before its time: the timer goes, and a later one still fires.
        deadlines.clear(deadlines.add(loop, lambda: fired.append("d")))
        await asyncio.sleep(0.1)
        started = loop.time()
        deadlines.add(loop, lambda: fired.append(f"e after {loop.time() - started:.2f}"))
        await asyncio.sleep(0.2)

    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
    assert fired[:2] == ["a", "c"] and len(fired) == 3
    assert fired[2].startswith("e after ") and float(fired[2].split()[-1]) >= 0.04


def test_the_proxy_runs_on_uvloop_when_installed_and_on_asyncio_without_it(loop_kind):
    loop = session_module.new_loop()
    try:
        assert type(loop).__module__.startswith(loop_kind)
    finally:
        loop.close()
