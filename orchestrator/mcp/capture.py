"""A run's stdout and stderr read from pipes, each capped: never the server's own stdio
(the MCP server's stdout is the protocol).

Owns: the pipes a run or exec is given (stdin: /dev/null), one reader thread per pipe
that keeps the first ``CAP`` bytes and counts the rest (a command printing 10 MB never
blocks on a full pipe, and never fills the server's memory), and the capped result.
``Stop``: the cancel of the run in flight, armed once it started (the MCP call was
cancelled: the command is stopped, its end recorded as cancelled).
Does not own: starting the run (``box``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CAP = 256 * 1024  # per stream, in a tool result: what an agent's context can take
CHUNK = 65536
DRAIN_S = 2.0  # a pipe a leftover process still holds open is not waited for


@dataclass
class Stream:
    data: bytearray = field(default_factory=bytearray)
    total: int = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = CAP - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.data.decode("utf-8", "replace"),
            "bytes": self.total,
            "truncated": self.total > len(self.data),
        }


class Capture:
    """Three descriptors for the run (``theirs``), read here until they end."""

    def __init__(self) -> None:
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        self.theirs = (os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), out_w, err_w)
        self.stdout, self.stderr = Stream(), Stream()
        self._threads = [
            threading.Thread(target=_read, args=(fd, stream), daemon=True)
            for fd, stream in ((out_r, self.stdout), (err_r, self.stderr))
        ]
        for thread in self._threads:
            thread.start()

    def handed_over(self) -> None:
        """The run holds its own copies: ours close, so the pipes end with the run."""
        for fd in self.theirs:
            with contextlib.suppress(OSError):
                os.close(fd)

    def finish(self) -> dict[str, Any]:
        """Both streams, once they ended (or ``DRAIN_S`` after the run did)."""
        for thread in self._threads:
            thread.join(timeout=DRAIN_S)
        return {"stdout": self.stdout.as_dict(), "stderr": self.stderr.as_dict()}


def _read(fd: int, stream: Stream) -> None:
    try:
        while chunk := os.read(fd, CHUNK):
            stream.add(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


class Stop:
    """Called from any thread, before or after ``arm``: the run is stopped once."""

    def __init__(self) -> None:
        self._cancel: Callable[[], None] | None = None
        self._asked = False
        self._lock = threading.Lock()

    def arm(self, cancel: Callable[[], None]) -> None:
        with self._lock:
            self._cancel, asked = cancel, self._asked
        if asked:
            cancel()

    def __call__(self) -> None:
        with self._lock:
            self._asked, cancel = True, self._cancel
        if cancel is not None:
            cancel()
