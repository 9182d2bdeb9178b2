"""One exec's stdin/stdout/stderr over a hijacked engine connection, to given fds.

Owns: starting an exec with a JSON body on a connection turned into a raw stream
(``hijack``; the engine's own ``Endpoint.hijack`` sends no body, which exec start
needs), relaying it (``relay``): the caller's stdin into the exec (half-closing at
its end so the command sees end of input), the exec's 8-byte-framed output to the
caller's stdout/stderr fds as it arrives; and an exec's stream while it runs
(``Running``: its timers, cut after a kill).
Does not own: the exec calls around it (``session``) or a run's attach (``attach``,
which relays to this process's own 0/1/2).

Why a wake-up pipe beside the stdin fd: a session's keeper is long-lived and its
callers' stdin may never end (a terminal); the feeding thread must end with the exec,
not with the caller's input, or every exec would leave a thread behind.
Why ``Running.cut``: after a kill, the relay must end even when the engine keeps the
stream open (an exec it still believes running): no keeper thread waits forever.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from .engine_api import Endpoint, EngineError, checked

_HEADER = struct.Struct(">BxxxL")  # stream (0 stdin, 1 stdout, 2 stderr), payload size
FEEDER_JOIN_S = 5.0


def hijack(api: Endpoint, path: str, body: Any) -> socket.socket:
    """POST ``path`` with ``body`` asking for the connection as a raw stream."""
    pending = api.send("POST", path, body, upgrade=True)
    try:
        status = pending.status()
        if status not in (101, 200):
            checked(pending.response())  # raises the engine's own message
            raise EngineError(status, pending.head.decode(errors="replace").splitlines()[0])
    except BaseException:
        pending.close()
        raise
    pending.sock.settimeout(None)
    return pending.sock


class Running:
    """One exec while it runs: its stream, the last signal passed on to it, whether a
    deadline of the keeper's killed it, and timers that end with it (``cancel``)."""

    __slots__ = ("overdue", "sent", "sock", "timers")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sent: int | None = None
        self.overdue = False
        self.timers: list[threading.Timer] = []

    def later(self, seconds: float, action: Callable[..., None], *args: Any) -> None:
        """Call ``action(*args)`` in ``seconds`` (a thread) unless cancelled first."""
        timer = threading.Timer(seconds, action, args)
        timer.daemon = True
        timer.start()
        self.timers.append(timer)

    def cut(self) -> None:
        """End the relay (its recv returns) even when the engine keeps the stream open;
        a closed Python socket refuses the call, so a reused fd number is never hit."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        timers, self.timers = self.timers, []
        for timer in timers:
            timer.cancel()


def relay(sock: socket.socket, stdio: tuple[int | None, int, int]) -> None:
    """Until the exec's output ends; the caller keeps (and closes) its own fds. No
    stdin (None): the exec was made without one."""
    if stdio[0] is None:
        try:
            _drain(sock, stdio[1], stdio[2])
        finally:
            sock.close()
        return
    wake_r, wake_w = os.pipe2(os.O_CLOEXEC)
    feeder = threading.Thread(
        target=_feed, args=(sock, stdio[0], wake_r), name="codex-box-exec-in", daemon=True
    )
    feeder.start()
    try:
        _drain(sock, stdio[1], stdio[2])
    finally:
        os.write(wake_w, b"x")
        with contextlib.suppress(OSError):  # unblocks a send stuck on a full window
            sock.shutdown(socket.SHUT_RDWR)
        feeder.join(FEEDER_JOIN_S)
        sock.close()
        os.close(wake_w)
        if not feeder.is_alive():  # else it may still poll it: left to the collector
            os.close(wake_r)


def _feed(sock: socket.socket, fd: int, wake: int) -> None:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    poller.register(wake, select.POLLIN)
    try:
        while True:
            ready = dict(poller.poll())
            if wake in ready:
                return  # the exec ended: its input no longer matters
            data = os.read(fd, 65536)
            if not data:
                break
            sock.sendall(data)
    except OSError:
        pass  # the caller's stdin or the exec is gone: either way, input ends
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)  # end of input for the command


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _drain(sock: socket.socket, out: int, err: int) -> None:
    broken: set[int] = set()  # a caller's fd that stopped taking output: discard
    with contextlib.suppress(OSError):
        while len(header := _recv_exactly(sock, _HEADER.size)) == _HEADER.size:
            stream, size = _HEADER.unpack(header)
            payload = _recv_exactly(sock, size)
            fd = err if stream == 2 else out
            if fd in broken:
                continue
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:
                broken.add(fd)  # keep reading: the exec must not block on its output
