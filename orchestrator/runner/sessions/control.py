"""A session's control socket: where its clients reach its keeper.

Owns: the socket (0600 in the session's 0700 directory, bound through
``/proc/self/fd`` so CODEX_HOME may be long), accepting clients (bounded in number;
one that says nothing is dropped), who may connect (the same uid, and a process
outside every sandbox: one in a pid namespace of its own is refused, however it
reached the socket), and what a connection may ask (``exec``, ``info``, ``stop``).
Does not own: the session's lifecycle (``keeper``) or one exec (``execs``).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import threading

from orchestrator.core.errors import CodexBoxError
from orchestrator.sandbox.linux import wire

from . import execs, store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .keeper import Keeper

TICK_S = 1.0  # how often idle time, lifetime and the sandbox's health are looked at
FIRST_MESSAGE_S = 10.0  # a connection must say what it wants within this
MAX_CONNECTIONS = 256  # at once; more are closed at once
_CONNECTIONS = threading.BoundedSemaphore(MAX_CONNECTIONS)  # one keeper per process


def listen(keeper: Keeper) -> socket.socket:
    home = keeper.context.home
    name = keeper.request.name
    with store.starting(home):  # two sessions asking for one name: one gets it
        if name is not None and any(
            s.name == name and live and s.id != keeper.session_id
            for s, live in store.all_sessions(home)
        ):
            raise CodexBoxError(
                f"a live session is already named {name!r}",
                hint="choose another --name, or stop it first (codex-box session stop NAME)",
            )
        store.make_directory(home, keeper.session_id)
        store.write_state(home, keeper.state())
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    fd = store.open_directory(home, keeper.session_id)
    old = os.umask(0o177)  # the socket is created 0600: no window where it is wider
    try:
        listener.bind(f"/proc/self/fd/{fd}/{store.SOCKET}")
    finally:
        os.umask(old)
        os.close(fd)
    listener.listen(64)
    listener.setblocking(False)  # serve() polls it beside the keeper's wake-up pipe
    return listener


def serve(keeper: Keeper, listener: socket.socket) -> str:
    """Until the session ends; returns why it ended."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: keeper.stop("codex-box got a signal"))
    # Poll the socket and the keeper's wake-up pipe: stop() (from a client's thread or
    # a signal) ends the wait at once. (A shut-down listener with a timeout made
    # accept() spin on EAGAIN until its tick: a second of CPU per stop.)
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    poller.register(keeper.wake_fd, select.POLLIN)
    while not keeper.stopping.is_set():
        if not poller.poll(TICK_S * 1000):
            keeper.check_clock()
            continue
        if keeper.stopping.is_set():
            break
        try:
            conn, _ = listener.accept()
        except OSError:  # nothing to accept after all (EAGAIN), or the client left
            keeper.check_clock()
            continue
        conn.setblocking(True)
        keeper.check_clock()
        threading.Thread(
            target=_connection, args=(keeper, conn), name="codex-box-session-client", daemon=True
        ).start()
    return keeper.stop_reason or "stopped"


def _connection(keeper: Keeper, conn: socket.socket) -> None:
    if not _CONNECTIONS.acquire(blocking=False):
        conn.close()  # bounded: a flood of idle clients cannot exhaust the keeper
        return
    try:
        with conn:
            _serve_one(keeper, conn)
    except Exception:
        return
    finally:
        _CONNECTIONS.release()


def _serve_one(keeper: Keeper, conn: socket.socket) -> None:
    refusal = refused_peer(conn)
    if refusal:
        with contextlib.suppress(OSError):
            wire.send(conn, {"event": "error", "message": refusal, "exit_code": 125})
        return
    conn.settimeout(FIRST_MESSAGE_S)  # a client that says nothing is dropped
    try:
        received = wire.recv(conn)
    except OSError:
        return
    if received is None:
        return
    conn.settimeout(None)
    message, fds = received
    op = message.get("op")
    if op == "exec":
        execs.handle(keeper, conn, message, fds)
        return
    for fd in fds:
        os.close(fd)
    if op == "info":
        wire.send(conn, keeper.info())
    elif op == "stop":
        keeper.stop("stopped by its user")
        wire.send(conn, {"event": "stopping", "id": keeper.session_id})


def refused_peer(
    conn: socket.socket, *, allow_root: bool = False, what: str = "a session's control socket"
) -> str | None:
    """Why this peer may not use ``what``, or None. Same user only (or root, with
    ``allow_root``); and never a process inside a sandbox (every sandbox has a pid
    namespace of its own), however it reached the socket."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _ = struct.unpack("3i", creds)
    if uid != os.getuid() and not (allow_root and uid == 0):
        return f"uid {uid} may not use {what} of uid {os.getuid()}"
    # The pid may be reused once the peer exits: a pidfd of the peer itself (kernel
    # 6.5+) pins it, and the peer still running after the look at /proc/PID means that
    # PID was the peer's when we looked.
    pidfd = _peer_pidfd(conn)
    try:
        theirs = os.readlink(f"/proc/{pid}/ns/pid")
        ours = os.readlink("/proc/self/ns/pid")
        if pidfd is not None:
            with contextlib.suppress(PermissionError):
                signal.pidfd_send_signal(pidfd, 0)
    except OSError:
        return "the peer's process could not be identified"
    finally:
        if pidfd is not None:
            os.close(pidfd)
    if theirs != ours:
        return f"a process inside a sandbox may not use {what}"
    return None


SO_PEERPIDFD = 77  # <asm-generic/socket.h>; Python 3.11 does not name it


def _peer_pidfd(conn: socket.socket) -> int | None:
    try:
        return int(conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD))
    except OSError:  # an older kernel: the pid alone
        return None
