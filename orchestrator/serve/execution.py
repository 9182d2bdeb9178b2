"""Driving one ``Execution`` for an HTTP client: its result as one JSON document, or its
output as NDJSON events while it runs.

Owns: waiting for the end off the event loop (a thread: the runner's and the keeper's
protocols block), the client going away (its run cancelled: the process tree killed,
the end audited as cancelled), the events of a stream (``stdout``/``stderr`` chunks,
then ``exit`` or ``error``), counting each end in the metrics, and giving the slot back.
Does not own: starting it (``service``), reading pipes (``streams``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import anyio.to_thread

from orchestrator.core.errors import CodexBoxError

from . import problems, streams
from .metrics import exit_class
from .service import Execution, Service

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


def _wait(service: Service, execution: Execution) -> asyncio.Future[dict[str, Any]]:
    """The end, awaited in a thread of its own (a task apart from the request's: the
    client going away must not abandon the wait, only cancel the run); begun once."""
    if execution.ending is None:
        execution.ending = asyncio.ensure_future(
            anyio.to_thread.run_sync(execution.wait, limiter=service.threads())
        )
    return execution.ending


def abandon(service: Service, execution: Execution) -> None:
    """Nobody will read this execution's end (its client left before the stream began,
    or the stream was cancelled): cancel it and settle it once it ended."""
    if execution.settled:
        return
    execution.cancel()
    _wait(service, execution).add_done_callback(lambda f: settle(service, execution, _value(f)))


async def collected(service: Service, execution: Execution, receive: Receive) -> dict[str, Any]:
    """The result with both streams (capped); raises the run's ``CodexBoxError``."""
    ended = asyncio.Event()
    output = asyncio.ensure_future(streams.collect(execution.pipes, ended))
    watcher = asyncio.ensure_future(_on_disconnect(receive, execution.cancel))
    try:
        result = await asyncio.shield(_wait(service, execution))
    except asyncio.CancelledError:  # the server stops: nobody reads this answer
        output.cancel()
        abandon(service, execution)
        raise
    except CodexBoxError:
        ended.set()
        await output
        settle(service, execution, None)
        raise
    finally:
        watcher.cancel()
    ended.set()
    out, err = await output
    settle(service, execution, result)
    return {
        **result,
        "stdout": out.text(),
        "stderr": err.text(),
        "stdout_bytes": out.total,
        "stderr_bytes": err.total,
        "truncated": out.total > len(out.data) or err.total > len(err.data),
    }


async def streamed(service: Service, execution: Execution) -> AsyncIterator[bytes]:
    """NDJSON: ``stdout``/``stderr`` events as output comes (no more is read than the
    client takes), then ``exit`` (the result) or ``error`` (a problem document).
    Starlette cancels this when the client goes away: the run is cancelled then."""
    payload = streams.EventData()
    waiting = _wait(service, execution)
    queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(2)  # backpressure
    producer = asyncio.ensure_future(_pump(execution.pipes, queue))
    finished = False
    try:
        async for name, chunk in _until_end(queue, waiting):
            yield _line({"event": name, **payload.of(name, chunk)})
        for name in ("stdout", "stderr"):  # a last character cut short: its bytes, as they are
            if (rest := payload.rest(name)) is not None:
                yield _line({"event": name, **rest})
        try:
            result = await asyncio.shield(waiting)
        except CodexBoxError as exc:
            finished = True
            settle(service, execution, None)
            yield _line(problems.as_event(exc))
            return
        finished = True
        settle(service, execution, result)
        yield _line({"event": "exit", **result})
    finally:
        producer.cancel()
        if not finished:  # the client went away (or the server stops)
            abandon(service, execution)


def settle(service: Service, execution: Execution, result: dict[str, Any] | None) -> None:
    """Once per execution: counted, what it used removed, its slot given back."""
    if execution.settled:
        return
    execution.settled = True
    try:
        _count(service, execution, result)
        service.finished(execution, result)
    finally:
        service.gate.release()


def _value(future: asyncio.Future[dict[str, Any]]) -> dict[str, Any] | None:
    if future.cancelled() or future.exception() is not None:
        return None
    return future.result()


async def _pump(pipes: streams.Pipes, queue: asyncio.Queue[tuple[str, bytes] | None]) -> None:
    async for item in streams.merged(pipes):
        await queue.put(item)
    await queue.put(None)


async def _until_end(
    queue: asyncio.Queue[tuple[str, bytes] | None], waiting: asyncio.Future[dict[str, Any]]
) -> AsyncIterator[tuple[str, bytes]]:
    """The chunks until both pipes end — or ``DRAIN_AFTER_END_S`` after the run ended
    (a pipe some leftover still holds is not waited for)."""
    deadline: float | None = None
    getting: asyncio.Future[tuple[str, bytes] | None] | None = None
    try:
        while True:
            if getting is None:
                getting = asyncio.ensure_future(queue.get())
            if deadline is None and waiting.done():
                deadline = time.monotonic() + streams.DRAIN_AFTER_END_S
            awaited: set[asyncio.Future[Any]] = {getting} if deadline else {getting, waiting}
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            await asyncio.wait(awaited, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if getting.done():
                item, getting = getting.result(), None
                if item is None:
                    return
                yield item
            elif deadline is not None and time.monotonic() >= deadline:
                return
    finally:
        if getting is not None:
            getting.cancel()


async def _on_disconnect(receive: Receive, cancel: Callable[[], None]) -> None:
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            cancel()
            return


def _count(service: Service, execution: Execution, result: dict[str, Any] | None) -> None:
    metrics = service.metrics
    if result is None:
        metrics.runs.labels(execution.kind, "denied", "-", exit_class(None)).inc()
        return
    code = result.get("exit_code")
    cancelled = bool(result.get("cancelled"))
    metrics.runs.labels(
        execution.kind, "allowed", str(result.get("backend")), exit_class(code, cancelled=cancelled)
    ).inc()


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"
