"""Talking to a live session's keeper: what ``codex-box exec``, ``session show/stop``
and the Python API's ``Session`` share.

Owns: connecting to the control socket, one request and its answers (an ``ask`` for
approval is answered through the caller's ``confirm``), passing the caller's stdin,
stdout and stderr (SCM_RIGHTS), and Ctrl-C during an exec (passed on as SIGINT; a
second one kills the exec). Imports little: it is the whole of ``exec``'s start-up.
Does not own: finding the session (``store``) or any decision (the keeper).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import time

from orchestrator.core.errors import EXIT_SETUP, CodexBoxError
from orchestrator.sandbox.linux import wire

from . import locate

TYPE_CHECKING = False  # no `typing` on `exec`'s path (orchestrator/__init__)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from orchestrator.core.options import Confirm

    Home = str | os.PathLike[str]


class SessionError(CodexBoxError):
    """The keeper refused or failed a request; carries the keeper's exit code."""

    def __init__(self, message: str, *, hint: str = "", exit_code: int = EXIT_SETUP) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


def connect(home: Home, session_id: str) -> socket.socket:
    sock = _above_stdio(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    try:
        fd = locate.open_directory(home, session_id)
        try:
            sock.connect(f"/proc/self/fd/{fd}/{locate.SOCKET}")
        finally:
            os.close(fd)
    except OSError as exc:
        sock.close()
        raise SessionError(
            f"session {session_id} does not answer ({exc.strerror or exc})",
            hint="`codex-box session ls` shows whether it still lives; `codex-box gc` "
            "removes a dead one",
        ) from exc
    return sock


def _above_stdio(sock: socket.socket) -> socket.socket:
    """The socket on a descriptor above 2. A caller started with stdin or stdout closed
    would otherwise get it there and pass the keeper's connection to the command as its
    stdio: the sandboxed command could then talk to its own keeper."""
    if sock.fileno() > 2:
        return sock
    fd = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, 3)
    sock.close()
    return socket.socket(fileno=fd)


def request(home: Home, session_id: str, message: Mapping[str, Any]) -> dict[str, Any]:
    """One request without descriptors (info, stop): the keeper's one answer."""
    with connect(home, session_id) as sock:
        _send_request(sock, dict(message))
        return _answer(sock)


def _send_request(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    """Send the request. A keeper that refuses the peer (another uid, a client inside a
    sandbox) answers and closes without reading it: the send then fails with a broken
    pipe while the keeper's reason waits in our receive queue — say that reason."""
    try:
        wire.send(sock, message, fds)
    except OSError as exc:
        _answer(sock)  # raises the keeper's error, or "went away"
        raise SessionError(
            f"the session's keeper closed the connection before the request ({exc})",
            hint="the session may have stopped; `codex-box session ls`",
        ) from exc


def execute(
    home: Home,
    session_id: str,
    message: Mapping[str, Any],
    *,
    stdio: Sequence[int] = (0, 1, 2),
    confirm: Confirm | None = None,
) -> dict[str, Any]:
    """Run one exec: the keeper's ``exit`` event (its ``result``)."""
    with begin(home, session_id, message, stdio=stdio, can_ask=confirm is not None) as sock:
        return finish(sock, confirm=confirm)


def begin(
    home: Home,
    session_id: str,
    message: Mapping[str, Any],
    *,
    stdio: Sequence[int],
    can_ask: bool = False,
) -> socket.socket:
    """Send one exec; the connection to read its end from (``finish``). Shutting its
    writing side down (the caller's client went away) makes the keeper kill the
    exec's whole tree; its ``exit`` event still comes."""
    sock = connect(home, session_id)
    try:
        _send_request(sock, {**message, "can_ask": can_ask}, list(stdio))
    except BaseException:
        sock.close()
        raise
    return sock


def finish(sock: socket.socket, *, confirm: Confirm | None = None) -> dict[str, Any]:
    """The exec's ``exit`` event, passing Ctrl-C and approval questions on."""
    interrupts = 0
    while True:
        try:
            event = _answer(sock)
        except KeyboardInterrupt:
            # The command runs in its own session (not our terminal's foreground
            # group): Ctrl-C reaches it through us. Twice: kill its whole tree.
            interrupts += 1
            with contextlib.suppress(OSError):
                if interrupts == 1:
                    wire.send(sock, {"op": "signal", "signal": signal.SIGINT})
                else:
                    wire.send(sock, {"op": "kill"})
            continue
        if event.get("event") == "ask" and confirm is not None:
            answer = confirm(str(event.get("question")))
            wire.send(sock, {"op": "answer", "answer": answer})
            continue
        return event


def _answer(sock: socket.socket) -> dict[str, Any]:
    try:
        received = wire.recv(sock)
    except OSError as exc:
        received = None
        cause: Exception | None = exc
    else:
        cause = None
    if received is None:
        raise SessionError(
            "the session's keeper went away before it answered",
            hint="the session may have stopped; `codex-box session ls`",
        ) from cause
    event, fds = received
    for fd in fds:
        os.close(fd)
    if event.get("event") == "error":
        raise SessionError(
            str(event.get("message")),
            hint=str(event.get("hint", "")),
            exit_code=int(event.get("exit_code", EXIT_SETUP)),
        )
    return event


def wait_stopped(home: Home, session_id: str, *, timeout_s: float = 30.0) -> bool:
    """After ``stop``: until the keeper has removed everything (its directory last)."""
    deadline = time.monotonic() + timeout_s
    while os.path.exists(locate.session_dir(home, session_id)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
