"""An exec's client while the exec runs: the approval question asked through it, and
watching it (Ctrl-C passed on as a signal; the client gone → the exec's tree killed).

Owns: the conversation on one exec's connection after the request. Does not own:
deciding or running the exec (``execs``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import TYPE_CHECKING

from orchestrator.sandbox.linux import wire

if TYPE_CHECKING:
    from .keeper import Keeper


def asker(conn: socket.socket):  # type: ignore[no-untyped-def]
    def ask(question: str) -> bool | None:
        wire.send(conn, {"event": "ask", "question": question})
        received = wire.recv(conn)
        if received is None:
            return None
        answer, fds = received
        close(fds)
        value = answer.get("answer")
        return value if isinstance(value, bool) else None

    return ask


class Watcher:
    """Reads the client while its exec runs: Ctrl-C passed on; gone → tree killed."""

    def __init__(self, keeper: Keeper, conn: socket.socket, exec_id: str, *, detach: bool) -> None:
        self.keeper = keeper
        self.conn = conn
        self.exec_id = exec_id
        self.detach = detach
        self.client_gone = False  # it went away mid-exec: the end is recorded as cancelled
        self._finished = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="codex-box-exec-client", daemon=True
        )

    def start(self) -> None:
        if not self.detach:
            self._thread.start()

    def done(self) -> None:
        self._finished.set()

    def _watch(self) -> None:
        sandbox = self.keeper.sandbox
        while not self._finished.is_set():
            try:
                received = wire.recv(self.conn)
            except OSError:
                received = None
            if self._finished.is_set():
                return
            if received is None:  # the client is gone: nobody waits for this exec
                self.client_gone = True
                sandbox.kill(self.exec_id)
                return
            message, fds = received
            close(fds)
            if message.get("op") == "signal" and isinstance(message.get("signal"), int):
                sandbox.signal(self.exec_id, message["signal"])
            elif message.get("op") == "kill":
                sandbox.kill(self.exec_id)


def close(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
