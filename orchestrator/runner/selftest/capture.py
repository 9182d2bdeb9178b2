"""What one sandboxed run left on the host while it ran: its output, captured from the
descriptors the backends write to, and how many of its marked processes ran at once.

Owns: swapping descriptors 0-2 around one run, and the host process counter.
Does not own: running (``harness``), judging (the attacks).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

OUTPUT_CAP = 1 << 20  # bytes of each stream kept from one run


class Streams:
    stdout = ""
    stderr = ""


@contextlib.contextmanager
def captured() -> Iterator[Streams]:
    """The run's stdio: stdin empty, stdout and stderr into files read afterwards. The
    backends write to descriptors 0-2 (the native command inherits them, the engines'
    output is copied to them), so these are swapped, not ``sys.stdout``."""
    streams = Streams()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            for fd, target in ((0, null), (1, out.fileno()), (2, err.fileno())):
                os.dup2(target, fd)
            yield streams
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            for fd, copy in enumerate(saved):
                os.dup2(copy, fd)
                os.close(copy)
            os.close(null)
        for file, name in ((out, "stdout"), (err, "stderr")):
            file.seek(0)
            setattr(streams, name, file.read(OUTPUT_CAP).decode(errors="replace"))


class Watch:
    """Counts host processes whose command line is exactly ``pattern``, every 20 ms
    while a run is in flight: the fork bomb's effect as the host sees it."""

    def __init__(self, pattern: bytes) -> None:
        self.pattern = pattern
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="selftest-watch", daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, count_processes(self.pattern))


def count_processes(pattern: bytes) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with (
                contextlib.suppress(OSError),
                open(f"/proc/{entry.name}/cmdline", "rb") as cmdline,
            ):
                count += cmdline.read(len(pattern) + 1) == pattern
    return count


def trim(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more)"
