"""A session's control messages: the frames on its control socket
(``sandbox.linux.wire.recv``), what a connection asks its keeper
(``runner.sessions.control._serve_one``, then ``execs.handle`` for an exec), and the
start request a keeper reads (``StartRequest.from_json``).

The property: a frame that is not a message is a ``WireError`` (its descriptors
closed), never another exception or a read without bound; an exec request of any shape
is answered — an error event (exit 2) *and* a denied audit record — or judged, and only
a request whose every field has the right type gets as far as being judged (nothing is
ever launched here: judging is where the fake keeper stops)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading
from types import SimpleNamespace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.errors import EXIT_SETUP, EXIT_USAGE, CodexBoxError
from orchestrator.runner.sessions import control, execs
from orchestrator.runner.sessions.request import StartRequest
from orchestrator.sandbox.linux import wire

from .conftest import assert_one_line_error, deep_nesting, fuzz, json_values, odd_text, outcome


def frame(body: bytes, announced: int | None = None) -> bytes:
    return struct.pack(">I", len(body) if announced is None else announced) + body


bodies = (
    json_values.map(lambda v: json.dumps(v).encode())
    | deep_nesting().map(str.encode)
    | st.sampled_from([b"{}", b'{"op": "info"}', b"\xff", b'{"op": 1' + b"0" * 5000 + b"}"])
)
frames = (
    st.builds(frame, bodies)
    | st.builds(frame, bodies, st.sampled_from([0, 1, 2**32 - 1, wire.MAX_MESSAGE + 1]))
    | st.binary(max_size=64)
)


def send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    """Write ``data`` and the end of the stream while the reader reads: a frame larger
    than the socket's buffer would otherwise block the test forever (it did)."""

    def send() -> None:
        with contextlib.suppress(OSError):  # the reader stopped early and closed
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


class Reached(CodexBoxError):
    """The request got as far as its spec: every check before it passed."""


def keeper(records: list[dict[str, Any]]) -> Any:
    return SimpleNamespace(
        session_id="s1",
        cwd="/work",
        spec=SimpleNamespace(profile="workspace"),
        resolution=SimpleNamespace(source=SimpleNamespace(value="flag")),
        write=lambda run_id, *batch: records.extend(batch),
        cited=lambda run_id: [],
        info=lambda: {"event": "info", "id": "s1"},
        stop=lambda why: None,
    )


def well_formed(message: Any) -> bool:
    """What ``execs._argv`` and the FIXED check must demand before a spec is made."""
    argv, env, cwd = message.get("argv"), message.get("env", []), message.get("cwd")
    # (env: None is refused too — a present env must be a list)
    return (
        isinstance(argv, list) and bool(argv)
        and all(isinstance(a, str) and "\0" not in a for a in argv)
        and isinstance(env, list) and all(isinstance(e, str) for e in env)
        and isinstance(message.get("environ", {}), dict)
        and (not cwd or (isinstance(cwd, str) and "\0" not in cwd))
        and all(message.get(k) is None for k in execs.FIXED)
    )  # fmt: skip


def usually(valid: object, other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.integers(0, 2).flatmap(lambda n: st.just(valid) if n else other)


exec_messages = st.fixed_dictionaries(
    {"op": st.just("exec"), "argv": usually(["ls"], st.lists(st.sampled_from(["ls", "a\0b"])
                                                              | odd_text, max_size=3)),
     "environ": usually({}, st.dictionaries(odd_text, odd_text, max_size=2) | json_values)},
    optional={
        "env": st.lists(odd_text, max_size=2) | json_values,
        "cwd": st.sampled_from(["sub", "/", "..", "a\0b"]) | json_values,
        "profile": st.none() | st.just("trusted") | json_values,
        "timeout": json_values,
        "approve": json_values,
        "detach": json_values,
    },
)


@fuzz("session control messages (exec/info/stop)", examples=200)
@given(exec_messages | json_values, st.booleans())
def test_control_messages(monkeypatch: Any, message: Any, with_stdio: bool) -> None:
    records: list[dict[str, Any]] = []

    def reached(*args: Any) -> None:
        raise Reached("judged")

    monkeypatch.setattr(execs, "_spec", reached)
    ours, client = socket.socketpair()
    stdio = [os.open(os.devnull, os.O_RDWR) for _ in range(3)] if with_stdio else []
    try:
        body = json.dumps(message).encode()
        data = frame(body) if len(body) <= wire.MAX_MESSAGE else b""
        if stdio and data:  # the descriptors ride on the first byte, as the client sends
            socket.send_fds(client, [data[:1]], stdio)
            data = data[1:]
        sending = send_in_background(client, data)
        _, error = outcome(lambda: control._serve_one(keeper(records), ours), message)
        assert error is None, error  # every refusal is answered, not raised
        ours.close()
        sending.join(10)
        answer = wire.recv(client)
    finally:
        for fd in stdio:
            os.close(fd)
        ours.close()
        client.close()
    if not isinstance(message, dict) or message.get("op") != "exec":
        return
    assert answer is not None and answer[0].get("event") == "error", answer
    event = answer[0]
    if well_formed(message) and with_stdio:
        assert event["message"] == "judged", event  # it got as far as being judged
        return
    assert event["exit_code"] == EXIT_USAGE and "\n" not in event["message"], event
    assert [r for r in records if r.get("decision") == "denied"], "refused without a record"


@fuzz("session wire frames", examples=300)
@given(st.lists(frames, min_size=1, max_size=3).map(b"".join))
def test_wire_frames(data: bytes) -> None:
    ours, client = socket.socketpair()
    try:
        sending = send_in_background(client, data)
        ours.settimeout(5)
        for _ in range(4):
            try:
                received = wire.recv(ours)
            except wire.WireError as exc:
                assert "\n" not in str(exc)
                break

            if received is None:
                break
            assert isinstance(received[0], dict) and received[1] == []
    finally:
        ours.close()
        sending.join(10)
        client.close()


@fuzz("session wire frames (size bound)", examples=100)
@given(st.integers(wire.MAX_MESSAGE + 1, 2**32 - 1), json_values)
def test_an_oversized_frame_is_refused_before_its_body_is_read(size: int, value: Any) -> None:
    ours, client = socket.socketpair()
    try:
        sending = send_in_background(client, frame(json.dumps(value).encode(), announced=size))
        try:
            wire.recv(ours)
        except wire.WireError as exc:
            assert "over the limit" in str(exc), exc
        else:
            raise AssertionError("an oversized frame was read")
    finally:
        ours.close()
        sending.join(10)
        client.close()


start_fields = st.fixed_dictionaries(
    {"environ": st.dictionaries(odd_text, odd_text, max_size=2), "cwd": odd_text},
    optional={
        "idle_timeout_s": st.floats(allow_nan=True) | json_values,
        "max_lifetime_s": st.floats(allow_infinity=True) | json_values,
        "options": st.fixed_dictionaries({}, optional={"env_names": json_values,
                                                       "timeout": json_values}) | json_values,
        "name": json_values,
        "bogus": json_values,
    },
)  # fmt: skip


@fuzz("session start request", examples=300)
@given(start_fields | json_values)
def test_start_request(data: Any) -> None:
    request, error = outcome(lambda: StartRequest.from_json(data), data)
    if error is not None:
        assert_one_line_error(error, CodexBoxError, exit_code=error.exit_code)
        assert error.exit_code in (EXIT_USAGE, EXIT_SETUP)
        return
    assert 0 < request.idle_timeout_s <= 365 * 86400 and request.max_lifetime_s > 0
