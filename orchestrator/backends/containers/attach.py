"""Live stdin/stdout/stderr over a Docker-API attach socket.

Owns: copying our stdin into the container (half-closing at EOF so the command sees
end of input) and the container's output to our stdout/stderr as it arrives, demuxing
the 8-byte frame headers the engine uses when there is no tty; with -t, our terminal in
raw mode and its window size.
Does not own: the attach call itself or the container's lifecycle.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterator

_HEADER = struct.Struct(">BxxxL")  # stream (0 stdin, 1 stdout, 2 stderr), payload size


class AttachedStreams:
    def __init__(self, sock: socket.socket, *, tty: bool) -> None:
        self.sock = sock
        self.tty = tty
        self._out = threading.Thread(target=self._pump_out, name="codex-box-out", daemon=True)
        self._in = threading.Thread(target=self._pump_in, name="codex-box-in", daemon=True)

    def start(self) -> None:
        self._out.start()
        self._in.start()

    def finish(self, *, timeout: float = 5.0) -> None:
        """Wait (bounded) until the engine has sent everything, then close."""
        self._out.join(timeout)
        with contextlib.suppress(OSError):
            self.sock.close()

    def _recv_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def _pump_out(self) -> None:
        with contextlib.suppress(OSError):
            if self.tty:
                while chunk := self.sock.recv(65536):
                    os.write(1, chunk)
                return
            while header := self._recv_exactly(_HEADER.size):
                if len(header) < _HEADER.size:
                    return
                stream, size = _HEADER.unpack(header)
                payload = self._recv_exactly(size)
                os.write(2 if stream == 2 else 1, payload)

    def _pump_in(self) -> None:
        try:
            while data := os.read(0, 65536):
                self.sock.sendall(data)
        except OSError:
            pass  # no stdin (closed) or the container is gone: either way, input ends
        with contextlib.suppress(OSError):
            if self.tty:
                # Half-closing would hang up the container's terminal (and drop its
                # output): end input as Ctrl-D at a terminal does.
                self.sock.sendall(b"\x04")
            else:
                self.sock.shutdown(socket.SHUT_WR)  # end of input for the command


def copy_window_size(resize: Callable[[int, int], None]) -> None:
    """Give the container's terminal our window's size (rows, columns)."""
    import fcntl  # here and below: only a run with -t needs the terminal modules
    import termios

    with contextlib.suppress(OSError):
        rows, cols = struct.unpack("hh", fcntl.ioctl(1, termios.TIOCGWINSZ, b"\0" * 4))
        resize(rows, cols)


@contextlib.contextmanager
def raw_terminal(*, enabled: bool) -> Iterator[None]:
    """With -t on a real terminal, keystrokes go to the container unprocessed."""
    if not (enabled and sys.stdin.isatty()):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(0)
    tty.setraw(0)
    try:
        yield
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)
