"""``-t`` without a terminal: a fresh pty for the command, relayed to our stdin/stdout.

Owns: allocating the pty (echo off, our window size) and copying bytes both ways until
the launcher exits. Does not own: timeouts or signals (the caller's wait loop).

The pty is new and private to the run, so a ``TIOCSTI`` from inside could only type
into the command's own input — never into the user's shell.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import struct
import subprocess
import termios
import time
from typing import Any, Protocol

DEFAULT_SIZE = (24, 80)


class Process(Protocol):
    """What a wait loop needs of the process it waits for: ``subprocess.Popen``, or the
    native backend's forked launcher."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | Any: ...

    @property
    def args(self) -> Any: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


def open_pty() -> tuple[int, int]:
    """(master, slave) with echo off (input is not output) and our terminal's size."""
    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    rows, cols = DEFAULT_SIZE
    with contextlib.suppress(OSError):
        rows, cols = struct.unpack("hh", fcntl.ioctl(1, termios.TIOCGWINSZ, b"\0" * 4))
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    os.set_inheritable(slave, True)
    return master, slave


class Relay:
    def __init__(self, master: int) -> None:
        self.master = master
        self.stdin_open = True
        self.pending = b""  # input the command has not taken yet
        # Never block on the command: a full pty must not stop the clock of --timeout.
        os.set_blocking(master, False)

    def wait(self, proc: Process, timeout: float | None) -> int:
        """Relay until ``proc`` exits; ``subprocess.TimeoutExpired`` after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while proc.poll() is None:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise subprocess.TimeoutExpired(proc.args, timeout or 0)
            wait = 0.05 if remaining is None else min(0.05, remaining)
            reading = [self.master] + ([0] if self.stdin_open and not self.pending else [])
            writing = [self.master] if self.pending else []
            ready, writable, _ = select.select(reading, writing, [], wait)
            if self.master in ready:
                self._copy_out()
            if 0 in ready:
                self._read_in()
            if writable:
                self._flush_in()
        self._drain()
        return proc.returncode

    def _copy_out(self) -> bool:
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return False
        except OSError:  # EIO: every slave descriptor is closed
            return False
        if data:
            os.write(1, data)
        return bool(data)

    def _read_in(self) -> None:
        data = os.read(0, 65536)
        if not data:
            self.stdin_open = False
            data = b"\x04"  # end of input, as Ctrl-D at a terminal
        self.pending += data

    def _flush_in(self) -> None:
        with contextlib.suppress(BlockingIOError):
            written = os.write(self.master, self.pending)
            self.pending = self.pending[written:]

    def _drain(self) -> None:
        while select.select([self.master], [], [], 0)[0] and self._copy_out():
            pass
