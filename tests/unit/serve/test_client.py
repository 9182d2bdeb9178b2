"""The Python client of `codex-box serve`: addressing, results, problem documents as
ServerError, and one exchange with a canned server on a Unix socket (stdlib, a thread)."""

from __future__ import annotations

import base64
import http.server
import json
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from orchestrator.client import Client, Result, ServerError, _problem, default_address

EXIT = {
    "event": "exit",
    "run_id": "r-1",
    "backend": "native",
    "exit_code": 7,
    "duration_ms": 12,
    "warnings": ["slow"],
    "pooled": True,
}
FROM_ENV, GIVEN = "from-env", "given"  # test tokens, not secrets
PROBLEM = {
    "type": "urn:codex-box:problem:refused",
    "title": "refused",
    "status": 403,
    "detail": "the policy refuses `rm -rf /`",
    "exit_code": 126,
    "hint": "use another profile",
}


# --- addressing ---------------------------------------------------------------------------


def test_a_unix_address_connects_to_that_path() -> None:
    client = Client("unix:/run/x.sock", environ={})
    connection = client._connect()
    assert connection.path == "/run/x.sock"  # type: ignore[attr-defined]


def test_an_http_address_connects_to_host_and_port() -> None:
    connection = Client("http://127.0.0.1:8765", environ={})._connect()
    assert (connection.host, connection.port) == ("127.0.0.1", 8765)
    connection = Client("http://[::1]:9", environ={})._connect()
    assert (connection.host, connection.port) == ("::1", 9)


@pytest.mark.parametrize("address", ["ftp://x", "http://", "https://127.0.0.1:1", "/a/sock"])
def test_any_other_address_is_refused_with_exit_code_2(address: str) -> None:
    with pytest.raises(ServerError) as info:
        Client(address, environ={})
    assert info.value.exit_code == 2
    assert repr(address) in info.value.message


def test_the_default_address_is_the_env_or_the_socket_in_codex_home() -> None:
    assert default_address({"CODEX_BOX_SERVER": "http://127.0.0.1:1"}) == "http://127.0.0.1:1"
    assert default_address({"CODEX_HOME": "/h/.codex"}) == "unix:/h/.codex/serve.sock"
    assert default_address({"CODEX_BOX_SERVER": "", "HOME": "/u"}) == "unix:/u/.codex/serve.sock"
    assert Client(environ={"CODEX_HOME": "/h"}).address == "unix:/h/serve.sock"


def test_the_token_comes_from_the_argument_else_the_environment() -> None:
    env = {"CODEX_HOME": "/h", "CODEX_BOX_SERVER_TOKEN": FROM_ENV}
    assert Client(environ=env).token == FROM_ENV
    assert Client(token=GIVEN, environ=env).token == GIVEN
    assert Client(environ={"CODEX_HOME": "/h"}).token is None


# --- results and problems -----------------------------------------------------------------


def test_a_result_is_read_from_the_servers_dict() -> None:
    data = {**EXIT, "stdout": "out", "stderr": "err", "detail": None, "cancelled": 0}
    result = Result.of(data)
    assert (result.exit_code, result.backend, result.run_id, result.duration_ms) == (
        7,
        "native",
        "r-1",
        12,
    )
    assert (result.stdout, result.stderr, result.detail) == ("out", "err", "")
    assert result.warnings == ("slow",) and result.pooled is True and result.cancelled is False
    assert result.raw == data


def test_a_result_without_an_exit_code_is_an_error() -> None:
    with pytest.raises(KeyError):
        Result.of({"backend": "native"})


def test_a_problem_document_becomes_a_server_error_with_its_fields() -> None:
    error = _problem(PROBLEM, status=500)
    assert isinstance(error, ServerError)
    assert error.status == 403 and error.exit_code == 126
    assert error.message == PROBLEM["detail"] and error.hint == "use another profile"


def test_a_problem_that_is_not_a_dict_still_has_the_status() -> None:
    error = _problem(["?"], status=502)
    assert error.status == 502 and error.exit_code == 125 and "502" in error.message


# --- one exchange with a canned server ------------------------------------------------------


class Canned(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, dict[str, Any] | None, str | None]]] = []

    def log_message(self, *_args: Any) -> None:  # the Unix peer has no address to log
        return None

    def _body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("content-length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def _send(self, status: int, kind: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _ndjson(self, events: list[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/x-ndjson")
        self.end_headers()  # no length: HTTP/1.0, the stream ends with the connection
        for event in events:
            self.wfile.write(json.dumps(event).encode() + b"\n\n")
            self.wfile.flush()

    def do_POST(self) -> None:
        body = self._body()
        Canned.seen.append(("POST", self.path, body, self.headers.get("authorization")))
        argv = (body or {}).get("argv", [])
        if self.path == "/v1/runs" and argv == ["ok"]:
            result = {k: v for k, v in EXIT.items() if k != "event"}
            self._send(200, "application/json", json.dumps({**result, "stdout": "hi"}).encode())
        elif self.path == "/v1/runs?stream=1" and argv == ["stream"]:
            self._ndjson(
                [
                    {"event": "stdout", "data": "héllo "},
                    {"event": "stderr", "data_b64": base64.b64encode(b"\xff\x00").decode()},
                    {"event": "stdout", "data": ""},
                    {"event": "stdout", "data": "€"},
                    EXIT,
                ]
            )
        elif self.path == "/v1/runs?stream=1" and argv == ["fails"]:
            self._ndjson([{"event": "stdout", "data": "partial"}, {"event": "error", **PROBLEM}])
        elif self.path == "/v1/runs?stream=1" and argv == ["cut"]:
            self._ndjson([{"event": "stdout", "data": "then nothing"}])
        else:
            self._send(403, "application/problem+json", json.dumps(PROBLEM).encode())

    def do_GET(self) -> None:
        Canned.seen.append(("GET", self.path, None, self.headers.get("authorization")))
        if self.path == "/healthz":
            self._send(200, "application/json", b'{"status": "ok"}')
        elif self.path == "/v1/sessions":
            self._send(200, "application/json", b'[{"id": "0123456789ab"}]')
        elif self.path == "/metrics":
            self._send(200, "text/plain", b"codex_box_running 0.0\n")
        elif self.path == "/garbage":
            self._send(200, "application/json", b"<html>")
        else:
            self._send(404, "application/problem+json", b'{"status": 404, "detail": "nope"}')

    def do_DELETE(self) -> None:
        Canned.seen.append(("DELETE", self.path, None, self.headers.get("authorization")))
        self.send_response(204)
        self.end_headers()


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "serve.sock")
    Canned.seen = []
    httpd = UnixServer(path, Canned)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"unix:{path}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def client(address: str, token: str | None = None) -> Client:
    return Client(address, token=token, timeout=5, environ={})


def test_a_run_returns_the_result_with_its_output(server: str) -> None:
    with client(server, token=GIVEN) as api:
        result = api.run(["ok"], profile="workspace", backend=None, timeout="5m")
    assert result.exit_code == 7 and result.stdout == "hi" and result.pooled
    method, path, body, authorization = Canned.seen[-1]
    assert (method, path) == ("POST", "/v1/runs")
    assert body == {"argv": ["ok"], "profile": "workspace", "timeout": "5m"}  # None: not sent
    assert authorization == f"Bearer {GIVEN}"


def test_a_streamed_run_hands_over_the_exact_bytes(server: str) -> None:
    got: list[tuple[str, bytes]] = []
    result = client(server).run(["stream"], on_output=lambda name, data: got.append((name, data)))
    assert got == [
        ("stdout", "héllo ".encode()),
        ("stderr", b"\xff\x00"),
        ("stdout", b""),
        ("stdout", "€".encode()),
    ]
    assert result.exit_code == 7 and result.run_id == "r-1" and result.stdout == ""
    assert Canned.seen[-1][3] is None  # no token, no header


def test_an_error_event_in_a_stream_raises_server_error(server: str) -> None:
    got: list[tuple[str, bytes]] = []
    with pytest.raises(ServerError) as info:
        client(server).run(["fails"], on_output=lambda name, data: got.append((name, data)))
    assert got == [("stdout", b"partial")]
    assert info.value.status == 403 and info.value.exit_code == 126
    assert info.value.hint == "use another profile"


def test_a_stream_that_ends_without_a_result_is_an_error(server: str) -> None:
    with pytest.raises(ServerError) as info:
        client(server).run(["cut"], on_output=lambda _name, _data: None)
    assert "without a result" in info.value.message


def test_a_problem_answer_raises_server_error_with_status_exit_code_and_hint(server: str) -> None:
    with pytest.raises(ServerError) as info:
        client(server).run(["refused"])
    assert info.value.status == 403 and info.value.exit_code == 126
    assert info.value.message == PROBLEM["detail"] and info.value.hint == "use another profile"


def test_a_problem_without_an_exit_code_is_a_setup_failure(server: str) -> None:
    with pytest.raises(ServerError) as info:
        client(server).session("gone")
    assert info.value.status == 404 and info.value.exit_code == 125
    assert Canned.seen[-1][1] == "/v1/sessions/gone"


def test_the_other_operations_reach_their_paths(server: str) -> None:
    api = client(server)
    assert api.health() == {"status": "ok"}
    assert api.sessions() == [{"id": "0123456789ab"}]
    assert api.metrics() == "codex_box_running 0.0\n"
    assert api.stop_session("a/b") is None
    assert Canned.seen[-1][:2] == ("DELETE", "/v1/sessions/a%2Fb")


def test_an_answer_that_is_not_json_is_a_server_error(server: str) -> None:
    with pytest.raises(ServerError) as info:
        client(server)._json("GET", "/garbage")
    assert "not JSON" in info.value.message


def test_a_server_that_does_not_answer_is_a_server_error(tmp_path: Path) -> None:
    with pytest.raises(ServerError) as info:
        client(f"unix:{tmp_path / 'nobody.sock'}").health()
    assert "does not answer" in info.value.message
    assert "CODEX_BOX_SERVER" in info.value.hint
