"""The proxy session's own limits, against a sandbox that tries to drown the audit log,
hide a refusal, or exhaust codex-box's descriptors (all on loopback, bounded)."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import pytest

from orchestrator.core.spec import READ_METHODS, Egress
from orchestrator.netproxy import session as session_module
from orchestrator.netproxy.session import MAX_AUDITED, MAX_CLIENTS, ProxySession
from orchestrator.runner.views import audit_line

pytestmark = pytest.mark.usefixtures("loop_kind")  # conftest: uvloop, then asyncio's loop

EGRESS = Egress(allow=("allowed.test",), deny=(), methods=READ_METHODS, inspect_tls=False,
                allow_local_hosts=False)


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    return sock


def _refused_request(port: int, host: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(f"GET http://{host}/ HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
        return data


def test_refusals_past_the_budget_are_counted_in_one_record_not_written_one_by_one() -> None:
    records: list[dict[str, Any]] = []
    listener = _listener()
    with ProxySession(EGRESS, run_id="t", audit=records.append) as proxy:
        proxy.serve(listener)
        port = listener.getsockname()[1]
        for n in range(MAX_AUDITED + 25):
            assert _refused_request(port, f"x{n}.other.test").startswith(b"HTTP/1.1 403")
    assert len(records) == MAX_AUDITED + 1
    assert records[0]["domain"] == "x0.other.test"
    assert records[-1]["target"] == "(further refusals)"
    assert records[-1]["reason"].startswith("25 more requests were refused")


def test_a_refusal_whose_record_fails_is_counted_for_the_runner() -> None:
    def broken(record: dict[str, Any]) -> None:
        raise OSError("disk full")

    listener = _listener()
    with ProxySession(EGRESS, run_id="t", audit=broken) as proxy:
        proxy.serve(listener)
        assert _refused_request(listener.getsockname()[1], "other.test").startswith(
            b"HTTP/1.1 403"
        )
    assert proxy.audit_failures == 1 and proxy.refused == 1


def test_connections_past_the_cap_are_closed_at_once(monkeypatch) -> None:
    monkeypatch.setattr(session_module, "MAX_CLIENTS", 3)
    listener = _listener()
    held: list[socket.socket] = []
    with ProxySession(EGRESS, run_id="t", audit=lambda r: None) as proxy:
        proxy.serve(listener)
        port = listener.getsockname()[1]
        try:
            for _ in range(3):  # stalled: a head that never ends
                conn = socket.create_connection(("127.0.0.1", port), timeout=5)
                conn.sendall(b"GET http://allowed.test/ HTTP/1.1\r\n")
                held.append(conn)
            extra = socket.create_connection(("127.0.0.1", port), timeout=5)
            assert extra.recv(16) == b""  # closed without a word
            extra.close()
        finally:
            for conn in held:
                conn.close()
    assert MAX_CLIENTS >= 128  # the real cap leaves room for a busy package manager


def test_the_audit_table_shows_control_characters_as_escapes() -> None:
    line = audit_line({"timestamp": "2026-11-29T06:10:00.000Z", "decision": "denied",
                       "operation": "network_connect", "profile": "ro",
                       "target": "\r\x1b[2K2026-11-29 06:10:00  allowed  command_exec\nfake",
                       "reason": "bad\x9bname"})
    assert "\r" not in line and "\n" not in line and "\x1b" not in line and "\x9b" not in line
    assert "\\r\\x1b[2K" in line and "\\n" in line


class _Sink:
    """A raw origin on loopback that counts what it receives (bounded: one connection,
    at most 8 MiB, 10 s)."""

    def __init__(self) -> None:
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            while len(self.received) < 8 << 20:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                self.received += data

    def close(self) -> None:
        with contextlib.suppress(OSError):  # wakes an accept() still waiting in _serve
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)


def _local_egress(port: int) -> Egress:
    return Egress(allow=(f"origin.test:{port}",), deny=(), methods=None, inspect_tls=False,
                  allow_local_hosts=True, hosts=(("origin.test", "127.0.0.1"),))


def test_a_huge_chunk_is_streamed_not_buffered_in_codex_box() -> None:
    import time

    sink = _Sink()
    listener = _listener()
    try:
        with ProxySession(_local_egress(sink.port), run_id="t", audit=lambda r: None) as proxy:
            proxy.serve(listener)
            with socket.create_connection(listener.getsockname(), timeout=5) as conn:
                conn.sendall(f"POST http://origin.test:{sink.port}/up HTTP/1.1\r\n"
                             "Transfer-Encoding: chunked\r\n\r\nFFFFFFFFF\r\n".encode())
                for _ in range(32):  # 2 MiB of a chunk that claims 64 GiB
                    conn.sendall(b"\0" * 65536)
                deadline = time.monotonic() + 5
                while len(sink.received) < 2 << 20 and time.monotonic() < deadline:
                    time.sleep(0.02)
                # All of it reached the origin while the chunk is still open.
                assert len(sink.received) >= 2 << 20
    finally:
        sink.close()


def _tunnel_reply(port: int, origin_port: int, payload: bytes, methods=READ_METHODS) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(f"CONNECT origin.test:{origin_port} HTTP/1.1\r\n\r\n".encode() + payload)
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
        return data


def test_a_lone_tls_byte_does_not_open_a_blind_tunnel_under_read_only() -> None:
    sink = _Sink()
    listener = _listener()
    records: list[dict[str, Any]] = []
    egress = Egress(allow=(f"origin.test:{sink.port}",), deny=(), methods=READ_METHODS,
                    inspect_tls=False, allow_local_hosts=True,
                    hosts=(("origin.test", "127.0.0.1"),))
    try:
        with ProxySession(egress, run_id="t", audit=records.append) as proxy:
            proxy.serve(listener)
            reply = _tunnel_reply(listener.getsockname()[1], sink.port,
                                  b"\x16\r\nSET key attacker-data\r\n")
        assert reply.startswith(b"HTTP/1.1 200")  # the tunnel was granted by domain...
        assert bytes(sink.received) == b""  # ...but nothing that is not TLS went through
        assert "neither TLS nor HTTP" in records[0]["reason"]
    finally:
        sink.close()


@pytest.mark.parametrize(
    "body",
    [
        b"5;a\nb\r\nhello\r\n0\r\n\r\n",  # bare LF in a chunk extension
        b"5;a\rb\r\nhello\r\n0\r\n\r\n",  # bare CR
        b"5\r\nhello\r\n0\r\nX: a\nDELETE /x HTTP/1.1\r\n\r\n",  # bare LF in a trailer
        b"5\r\nhello\r\n0\r\nno-colon-here\r\n\r\n",  # a trailer that is no header
    ],
)
def test_chunk_lines_and_trailers_with_bare_line_ends_are_refused(body: bytes) -> None:
    sink = _Sink()
    listener = _listener()
    try:
        with ProxySession(_local_egress(sink.port), run_id="t", audit=lambda r: None) as proxy:
            proxy.serve(listener)
            with socket.create_connection(listener.getsockname(), timeout=5) as conn:
                conn.sendall(f"POST http://origin.test:{sink.port}/x HTTP/1.1\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n".encode() + body)
                reply = b""
                while chunk := conn.recv(4096):
                    reply += chunk
        assert reply.startswith(b"HTTP/1.1 400"), reply[:80]
        assert b"DELETE" not in bytes(sink.received)
        assert b"no-colon-here" not in bytes(sink.received)
    finally:
        sink.close()
