"""A run's stdin, stdout and stderr as the server handles them: pipes read on the event loop.

Owns: the pipes a run or exec is given, reading them without a thread (the loop's
reader), backpressure (nothing more is read from a pipe until the previous chunk was
taken — for a stream, until the client took it — so a client that reads slowly makes
the command block on write, as a slow terminal would), the capped collection of a
non-streamed run, and the stdin feeder.
Does not own: what is sent to the client (``execution``).
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

CHUNK = 65536
CAP = 8 * 1024 * 1024  # per stream, in a non-streamed result; counted beyond, not kept
DRAIN_AFTER_END_S = 2.0  # a pipe a leftover process still holds open is not waited for


@dataclass
class Pipes:
    """The run's end of each (handed over, then closed here) and ours."""

    stdin: int
    stdout_w: int
    stderr_w: int
    stdout_r: int
    stderr_r: int
    _ours_closed: bool = field(default=False, repr=False)

    @classmethod
    def open(cls, stdin: str | None) -> Pipes:
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        if stdin is None:
            feed = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        else:
            feed, writer = os.pipe2(os.O_CLOEXEC)
            threading.Thread(target=_feed, args=(writer, stdin.encode()), daemon=True).start()
        return cls(feed, out_w, err_w, out_r, err_r)

    @property
    def theirs(self) -> tuple[int, int, int]:
        return (self.stdin, self.stdout_w, self.stderr_w)

    def handed_over(self) -> None:
        """The run has its own copies now: ours must close, or the pipes never end."""
        for fd in self.theirs:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        if not self._ours_closed:
            self._ours_closed = True
            for fd in (self.stdout_r, self.stderr_r):
                with contextlib.suppress(OSError):
                    os.close(fd)


def _feed(fd: int, data: bytes) -> None:
    """The request's stdin, written in a thread (a command that never reads it blocks
    only this thread; its end closes the pipe and ends the write with EPIPE)."""
    with contextlib.suppress(OSError):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view[:CHUNK]) :]
    with contextlib.suppress(OSError):
        os.close(fd)


async def chunks(fd: int) -> AsyncIterator[bytes]:
    """Each chunk of ``fd`` until its end; read only when the previous one was taken."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    while True:
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _wake, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
            continue
        if not data:
            return
        yield data


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def merged(pipes: Pipes, queue_size: int = 4) -> AsyncIterator[tuple[str, bytes]]:
    """("stdout"|"stderr", chunk) in the order they were read, until both end."""
    queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(queue_size)

    async def pump(name: str, fd: int) -> None:
        try:
            async for data in chunks(fd):
                await queue.put((name, data))  # full: stop reading (backpressure)
        finally:
            await queue.put(None)

    tasks = [
        asyncio.create_task(pump("stdout", pipes.stdout_r)),
        asyncio.create_task(pump("stderr", pipes.stderr_r)),
    ]
    try:
        ended = 0
        while ended < len(tasks):
            item = await queue.get()
            if item is None:
                ended += 1
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class Collected:
    data: bytearray = field(default_factory=bytearray)
    total: int = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = CAP - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


async def collect(pipes: Pipes, ended: asyncio.Event) -> tuple[Collected, Collected]:
    """Both streams, capped, until they end — or ``DRAIN_AFTER_END_S`` after ``ended``."""
    out, err = Collected(), Collected()

    async def gather() -> None:
        async for name, chunk in merged(pipes, queue_size=64):
            (out if name == "stdout" else err).add(chunk)

    task = asyncio.create_task(gather())
    try:
        await ended.wait()
        await asyncio.wait({task}, timeout=DRAIN_AFTER_END_S)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return out, err


class EventData:
    """A chunk as an event's payload: ``data`` (text) while the stream is UTF-8 (a
    character split between reads stays whole), ``data_b64`` for a chunk that is not —
    so a stream is byte-exact whatever the command writes."""

    def __init__(self) -> None:
        self._decoders = {
            name: codecs.getincrementaldecoder("utf-8")("strict") for name in ("stdout", "stderr")
        }

    def rest(self, name: str) -> dict[str, str] | None:
        """At the end: the bytes held back for a character that never completed."""
        pending = self._decoders[name].getstate()[0]
        self._decoders[name].reset()
        return {"data_b64": base64.b64encode(pending).decode()} if pending else None

    def of(self, name: str, chunk: bytes) -> dict[str, str]:
        decoder = self._decoders[name]
        state = decoder.getstate()
        try:
            return {"data": decoder.decode(chunk)}
        except UnicodeDecodeError:
            decoder.setstate(state)
            pending = decoder.getstate()[0]  # bytes held back from the previous chunk
            decoder.reset()
            return {"data_b64": base64.b64encode(pending + chunk).decode()}
