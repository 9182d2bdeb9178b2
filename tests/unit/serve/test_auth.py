"""Who may talk to the server: the listen address (loopback or refused), the token file
(ours, private, long enough) and the bearer-token gate in front of the app on TCP."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.errors import ConfigError, UsageError
from orchestrator.serve.auth import TokenGate, loopback, read_token
from tests.unit.serve.asgi import UNIX, call, scope

TOKEN = "s3cr3t-t0ken-0123456789abcdef"  # noqa: S105 -- a test token, not a secret


# --- loopback ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "address"),
    [
        ("127.0.0.1:8765", ("127.0.0.1", 8765)),
        ("127.5.5.5:1", ("127.5.5.5", 1)),
        ("localhost:8765", ("127.0.0.1", 8765)),
        ("[::1]:8765", ("::1", 8765)),
        ("127.0.0.1:65535", ("127.0.0.1", 65535)),
    ],
)
def test_a_loopback_address_is_accepted(listen: str, address: tuple[str, int]) -> None:
    assert loopback(listen) == address


@pytest.mark.parametrize(
    "listen",
    [
        "0.0.0.0:8765",
        "[::]:8765",
        "::",
        "192.168.1.10:8765",
        "10.0.0.1:8765",
        "example.com:8765",
        ":8765",
        "127.0.0.1",
        "127.0.0.1:",
        "localhost",
        "127.0.0.1:70000",
        "127.0.0.1:-1",
        "127.0.0.1:http",
    ],
)
def test_anything_but_loopback_host_port_is_a_usage_error(listen: str) -> None:
    with pytest.raises(UsageError) as info:
        loopback(listen)
    assert info.value.exit_code == 2
    assert repr(listen) in info.value.message
    assert "\n" not in info.value.one_line()
    assert info.value.hint


# --- the token file -----------------------------------------------------------------------


def token_file(tmp_path: Path, text: str = TOKEN, mode: int = 0o600) -> Path:
    path = tmp_path / "serve.token"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_a_private_token_file_is_read_without_its_newline(tmp_path: Path) -> None:
    assert read_token(str(token_file(tmp_path, TOKEN + "\n"))) == TOKEN


def test_a_missing_token_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as info:
        read_token(str(missing))
    assert str(missing) in info.value.message


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o602])
def test_a_token_file_others_can_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = token_file(tmp_path, mode=mode)
    with pytest.raises(ConfigError) as info:
        read_token(str(path))
    assert str(path) in info.value.message
    assert "chmod 600" in info.value.hint


def test_a_symlink_to_a_private_token_file_is_refused(tmp_path: Path) -> None:
    real = token_file(tmp_path)
    link = tmp_path / "link.token"
    link.symlink_to(real)
    with pytest.raises(ConfigError) as info:
        read_token(str(link))
    assert str(link) in info.value.message


def test_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.token"
    os.mkfifo(fifo, 0o600)
    outcome: list[BaseException | str] = []

    def attempt() -> None:
        try:
            outcome.append(read_token(str(fifo)))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=5)
    if thread.is_alive():  # unblock it: open the FIFO for writing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("read_token hung on a FIFO")
    assert len(outcome) == 1 and isinstance(outcome[0], ConfigError)


def test_a_directory_is_refused_as_a_config_error(tmp_path: Path) -> None:
    directory = tmp_path / "dir"
    directory.mkdir(mode=0o700)
    with pytest.raises(ConfigError):
        read_token(str(directory))


@pytest.mark.parametrize(
    "text",
    ["short", "x" * 15, "", "   \n", "0123456789 abcdef-0123", "0123456789\tabcdef-0123"],
)
def test_a_short_token_or_one_with_spaces_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        read_token(str(token_file(tmp_path, text)))
    assert "16 characters" in info.value.message


def test_a_token_of_exactly_sixteen_characters_is_accepted(tmp_path: Path) -> None:
    assert read_token(str(token_file(tmp_path, "y" * 16))) == "y" * 16


# --- the token gate -----------------------------------------------------------------------


class Inner:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, made: Any, receive: Any, send: Any) -> None:
        self.calls.append(made)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})


def bearer(value: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"127.0.0.1:8765"), (b"authorization", value)]


def assert_refused(answer: Any, inner: Inner) -> None:
    assert answer.status == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert int(answer.headers["content-length"]) == len(answer.body)
    body = answer.json()
    assert body["status"] == 401
    assert body["type"] == "urn:codex-box:problem:unauthorized"
    assert body["exit_code"] == 2
    assert "bearer token" in body["detail"]
    assert inner.calls == []


def test_tcp_without_authorization_is_a_401_problem() -> None:
    inner = Inner()
    assert_refused(call(TokenGate(inner, TOKEN), scope()), inner)


def test_tcp_with_a_wrong_token_is_a_401() -> None:
    inner = Inner()
    wrong = scope(headers=bearer(b"Bearer " + TOKEN.encode() + b"x"))
    assert_refused(call(TokenGate(inner, TOKEN), wrong), inner)


@pytest.mark.parametrize(
    "value",
    [
        b"Basic " + TOKEN.encode(),
        TOKEN.encode(),
        b"Bearer",
        b"Bearer ",
        b"Bearer " + TOKEN[:-1].encode(),
    ],
)
def test_tcp_with_another_scheme_or_a_prefix_of_the_token_is_a_401(value: bytes) -> None:
    inner = Inner()
    assert_refused(call(TokenGate(inner, TOKEN), scope(headers=bearer(value))), inner)


@pytest.mark.parametrize("scheme", [b"Bearer ", b"bearer ", b"BEARER "])
def test_tcp_with_the_right_token_reaches_the_app(scheme: bytes) -> None:
    inner = Inner()
    answer = call(TokenGate(inner, TOKEN), scope(headers=bearer(scheme + TOKEN.encode())))
    assert answer.status == 200 and answer.body == b"inner"
    assert len(inner.calls) == 1


def test_the_unix_socket_needs_no_token() -> None:
    inner = Inner()
    answer = call(TokenGate(inner, TOKEN), scope(server=UNIX))
    assert answer.status == 200 and len(inner.calls) == 1


def test_a_scope_without_a_server_needs_the_token() -> None:
    inner = Inner()
    assert_refused(call(TokenGate(inner, TOKEN), scope(omit_server=True)), inner)
    answer = call(
        TokenGate(inner, TOKEN),
        scope(omit_server=True, headers=bearer(b"Bearer " + TOKEN.encode())),
    )
    assert answer.status == 200


@pytest.mark.parametrize("server", [None, ("127.0.0.1", None, 1), ("/sock",), "/sock"])
def test_a_server_that_is_not_exactly_path_and_none_needs_the_token(server: Any) -> None:
    inner = Inner()
    assert_refused(call(TokenGate(inner, TOKEN), scope(server=server)), inner)


@pytest.mark.parametrize("token", [None, ""])
def test_without_a_token_every_tcp_request_is_refused(token: str | None) -> None:
    inner = Inner()
    gate = TokenGate(inner, token)
    assert_refused(call(gate, scope()), inner)
    assert_refused(call(gate, scope(headers=bearer(b"Bearer "))), inner)
    assert_refused(call(gate, scope(headers=bearer(b"Bearer None"))), inner)
    assert call(gate, scope(server=UNIX)).status == 200


def test_a_lifespan_scope_passes_through() -> None:
    inner = Inner()
    made = {"type": "lifespan"}

    async def main() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "lifespan.startup"}

        async def send(_message: Any) -> None:
            return None

        await TokenGate(inner, TOKEN)(made, receive, send)

    asyncio.run(main())
    assert inner.calls == [made]


def test_a_websocket_scope_on_tcp_needs_the_token_too() -> None:
    inner = Inner()
    made = {**scope(), "type": "websocket"}

    async def main() -> list[Any]:
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "websocket.connect"}

        async def send(message: Any) -> None:
            sent.append(message)

        await TokenGate(inner, TOKEN)(made, receive, send)
        return sent

    asyncio.run(main())
    assert inner.calls == []


def test_a_token_file_with_a_second_name_is_refused(tmp_path: Path) -> None:
    """A hard link elsewhere would let a sandbox read the token where it is not hidden."""
    token = tmp_path / "token"
    token.write_text("x" * 32)
    token.chmod(0o600)
    assert read_token(str(token)) == "x" * 32
    os.link(token, tmp_path / "elsewhere")
    with pytest.raises(ConfigError) as refused:
        read_token(str(token))
    assert "2 names" in refused.value.message
