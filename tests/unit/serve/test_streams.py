"""A run's output as the server handles it: event payloads byte-exact (text while it is
UTF-8, base64 when not), the pipes read on the loop, the capped collection, and the
NDJSON stream of one execution (driven with a fake service: nothing runs)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.core.errors import EXIT_REFUSED, Refused
from orchestrator.serve import execution, streams
from orchestrator.serve.gate import Gate
from orchestrator.serve.metrics import Metrics
from orchestrator.serve.service import Execution
from orchestrator.serve.streams import EventData, Pipes

EURO = "€".encode()  # e2 82 ac


def payload_bytes(event: dict[str, str]) -> bytes:
    if "data_b64" in event:
        assert "data" not in event
        return base64.b64decode(event["data_b64"])
    return event["data"].encode()


# --- EventData ----------------------------------------------------------------------------


def test_utf8_text_is_sent_as_data() -> None:
    assert EventData().of("stdout", "héllo wörld\n".encode()) == {"data": "héllo wörld\n"}


def test_a_character_split_between_chunks_arrives_whole() -> None:
    events = EventData()
    assert events.of("stdout", b"price: " + EURO[:1]) == {"data": "price: "}
    assert events.of("stdout", EURO[1:] + b"!") == {"data": "€!"}


def test_a_character_split_three_ways_arrives_whole_with_nothing_before() -> None:
    events = EventData()
    assert events.of("stdout", EURO[:1]) == {"data": ""}
    assert events.of("stdout", EURO[1:2]) == {"data": ""}
    assert events.of("stdout", EURO[2:]) == {"data": "€"}


def test_every_split_of_utf8_text_is_rebuilt_exactly() -> None:
    text = "a€b😀c\u00e9\n".encode()
    for cut in range(len(text) + 1):
        events = EventData()
        parts = [events.of("stdout", text[:cut]), events.of("stdout", text[cut:])]
        assert all("data" in part for part in parts), cut
        assert b"".join(payload_bytes(p) for p in parts) == text, cut


def test_bytes_that_are_not_utf8_come_as_base64_of_exactly_those_bytes() -> None:
    raw = b"\xff\xfe\x00binary\x80"
    event = EventData().of("stdout", raw)
    assert set(event) == {"data_b64"}
    assert base64.b64decode(event["data_b64"]) == raw


def test_base64_includes_the_bytes_held_back_from_the_previous_chunk() -> None:
    events = EventData()
    assert events.of("stdout", b"ok " + EURO[:2]) == {"data": "ok "}
    event = events.of("stdout", b"\xff tail")
    assert base64.b64decode(event["data_b64"]) == EURO[:2] + b"\xff tail"
    # the decoder starts afresh: nothing is held back twice
    assert events.of("stdout", b"again") == {"data": "again"}


def test_a_stream_of_mixed_chunks_is_byte_exact() -> None:
    chunks = [b"one ", EURO[:1], EURO[1:] + b"\xc3", b"\xa9\xff", b"\x80", b"end\n"]
    events = EventData()
    rebuilt = b"".join(payload_bytes(events.of("stderr", chunk)) for chunk in chunks)
    assert rebuilt == b"".join(chunks)


def test_stdout_and_stderr_are_decoded_apart() -> None:
    events = EventData()
    assert events.of("stdout", EURO[:2]) == {"data": ""}
    assert events.of("stderr", b"plain") == {"data": "plain"}
    assert events.of("stderr", b"\xff") == {"data_b64": base64.b64encode(b"\xff").decode()}
    assert events.of("stdout", EURO[2:]) == {"data": "€"}


# --- Pipes and collect --------------------------------------------------------------------


def read_all(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    return data


def collect(pipes: Pipes) -> tuple[streams.Collected, streams.Collected]:
    async def main() -> tuple[streams.Collected, streams.Collected]:
        ended = asyncio.Event()
        ended.set()
        return await asyncio.wait_for(streams.collect(pipes, ended), timeout=10)

    return asyncio.run(main())


def test_pipes_feed_stdin_and_collect_both_streams() -> None:
    pipes = Pipes.open(stdin="input ünïcode\n")
    try:
        assert read_all(pipes.stdin) == "input ünïcode\n".encode()
        os.write(pipes.stdout_w, b"out " + EURO)
        os.write(pipes.stderr_w, b"err\xff")
        pipes.handed_over()
        out, err = collect(pipes)
    finally:
        pipes.close()
    assert out.text() == "out €" and out.total == 7
    assert bytes(err.data) == b"err\xff" and err.total == 4
    assert err.text() == "err\ufffd"


def test_without_stdin_the_run_reads_an_empty_file() -> None:
    pipes = Pipes.open(stdin=None)
    try:
        assert read_all(pipes.stdin) == b""
        pipes.handed_over()
        out, err = collect(pipes)
    finally:
        pipes.close()
    assert (out.total, err.total) == (0, 0)


def test_more_than_a_pipe_holds_is_collected_while_it_is_written() -> None:
    big = os.urandom(300_000)
    pipes = Pipes.open(stdin=None)

    def writer() -> None:
        view = memoryview(big)
        while view:
            view = view[os.write(pipes.stdout_w, view) :]
        pipes.handed_over()

    thread = threading.Thread(target=writer, daemon=True)
    try:
        thread.start()
        out, err = collect(pipes)
    finally:
        thread.join(timeout=5)
        pipes.close()
    assert bytes(out.data) == big and out.total == len(big) and err.total == 0


def test_beyond_the_cap_output_is_counted_but_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "CAP", 10)
    pipes = Pipes.open(stdin=None)
    try:
        os.write(pipes.stdout_w, b"0123456789abcdef")
        os.write(pipes.stdout_w, b"more")
        os.write(pipes.stderr_w, b"tiny")
        pipes.handed_over()
        out, err = collect(pipes)
    finally:
        pipes.close()
    assert bytes(out.data) == b"0123456789" and out.total == 20
    assert bytes(err.data) == b"tiny" and err.total == 4


def test_collected_add_counts_every_chunk_beyond_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "CAP", 4)
    kept = streams.Collected()
    for chunk in (b"ab", b"cdef", b"gh"):
        kept.add(chunk)
    assert bytes(kept.data) == b"abcd" and kept.total == 8


def test_closing_the_pipes_twice_is_harmless() -> None:
    pipes = Pipes.open(stdin="x")
    pipes.handed_over()
    pipes.close()
    pipes.close()
    with pytest.raises(OSError):
        os.fstat(pipes.stdout_r)


# --- execution.streamed: the NDJSON of one execution --------------------------------------


RESULT = {"run_id": "r1", "backend": "native", "exit_code": 3, "duration_ms": 5}


def fake_service() -> Any:
    metrics = Metrics()
    finished: list[Any] = []
    return SimpleNamespace(
        gate=Gate(1, 0, metrics),
        metrics=metrics,
        threads=lambda: None,  # anyio's default limiter
        finished=lambda ex, result: finished.append(result),
        done=finished,
    )


def run_stream(writes: list[tuple[str, bytes]], wait: Any) -> tuple[Any, list[dict[str, Any]]]:
    """The events of one execution whose command wrote ``writes`` then ended."""
    service = fake_service()
    pipes = Pipes.open(stdin=None)
    for name, data in writes:
        os.write(pipes.stdout_w if name == "stdout" else pipes.stderr_w, data)
    pipes.handed_over()
    one = Execution(kind="run", pipes=pipes, started=lambda: None, wait=wait, cancel=lambda: None)

    async def main() -> list[bytes]:
        await service.gate.acquire()
        return [line async for line in execution.streamed(service, one)]

    try:
        lines = asyncio.run(asyncio.wait_for(main(), timeout=10))
    finally:
        pipes.close()
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    assert one.settled and service.gate.running == 0
    return service, [json.loads(line) for line in lines]


def rebuilt(events: list[dict[str, Any]], name: str) -> bytes:
    return b"".join(payload_bytes(e) for e in events if e["event"] == name)


def test_a_stream_sends_the_output_then_the_exit_event() -> None:
    service, events = run_stream(
        [("stdout", b"hello " + EURO), ("stderr", b"\xffwarn")], lambda: dict(RESULT)
    )
    assert events[-1] == {"event": "exit", **RESULT}
    assert {e["event"] for e in events[:-1]} <= {"stdout", "stderr"}
    assert rebuilt(events, "stdout") == b"hello " + EURO
    assert rebuilt(events, "stderr") == b"\xffwarn"
    assert service.done == [RESULT]
    sample = service.metrics.registry.get_sample_value(
        "codex_box_runs_total",
        {"kind": "run", "decision": "allowed", "backend": "native", "exit_class": "failure"},
    )
    assert sample == 1


def test_a_stream_whose_run_fails_ends_with_an_error_event() -> None:
    def refused() -> dict[str, Any]:
        raise Refused("no\nway", hint="ask")

    service, events = run_stream([("stdout", b"partial")], refused)
    assert rebuilt(events, "stdout") == b"partial"
    last = events[-1]
    assert last["event"] == "error"
    assert last["type"] == "urn:codex-box:problem:refused"
    assert last["status"] == 403 and last["exit_code"] == EXIT_REFUSED
    assert last["detail"] == "no\\nway" and last["hint"] == "ask"
    assert service.done == [None]


def test_a_stream_that_ends_mid_character_is_still_byte_exact() -> None:
    _service, events = run_stream([("stdout", b"abc" + EURO[:1])], lambda: dict(RESULT))
    assert events[-1]["event"] == "exit"
    assert rebuilt(events, "stdout") == b"abc" + EURO[:1]
