"""The proxy session's own limits, against a sandbox that tries to drown the audit log,
hide a refusal, or exhaust codex-box's descriptors (all on loopback, bounded)."""

from __future__ import annotations

import socket
from typing import Any

from orchestrator.netproxy import session as session_module
from orchestrator.netproxy.session import MAX_AUDITED, MAX_CLIENTS, ProxySession
from orchestrator.spec import READ_METHODS, Egress
from orchestrator.views import audit_line

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
