"""One-shot runs for a long-lived caller (``serve``), each in a process forked from a warm,
single-threaded parent: an HTTP round trip instead of an interpreter start.

Owns: the fork server's process (a fresh ``python -I``, started before the caller has
threads to worry about: it has none of its own, so each fork copies no lock another
thread holds — the reason ``sessions.start`` spawns instead of forking), handing it one
request and the run's stdin/stdout/stderr, the run's pid and result coming back, and
cancelling a run (its channel closed). The child's side is ``forked_run``.
Does not own: the run itself (``pipeline.Runner``, called exactly as the CLI calls it).

Why a process per run and not a thread: a backend's run waits for its command with the
process's own signal handlers and stdio (as the CLI does); a forked child gets both as
its own, and a crash in it ends one run, never the server.

The protocol, per run: the caller makes a socketpair (the run's *channel*) and sends one
end to the fork server over the control socket; the server forks, the child takes the
channel, reads the request with its three stdio descriptors from it, says
``{"event": "started", "pid": N}``, runs, and sends ``{"event": "result", ...}`` or
``{"event": "error", ...}``. The caller closing its end of the channel (its client went
away, or the caller itself died, even by SIGKILL) cancels the run: the child stops its
command (SIGTERM, forwarded by the backend to the whole sandbox) and records the end as
cancelled. The fork server exits when its control socket closes, after its children.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.core import errors
from orchestrator.core.errors import EXIT_SETUP, CodexBoxError, SandboxSetupError
from orchestrator.sandbox.linux import wire

CHILDREN_GRACE_S = 10.0  # after the control socket closed: the runs' time to stop
# A child's error keeps its kind across the channel (a front door answers each kind its
# own way: an engine that is down is not the caller's mistake).
_ERRORS: dict[str, type[CodexBoxError]] = {
    kind.__name__: kind
    for kind in (
        errors.AuditError,
        errors.BackendUnavailable,
        errors.Cancelled,
        errors.ConfigError,
        errors.Refused,
        errors.SandboxSetupError,
        errors.UsageError,
    )
}


class RunChannel:
    """One run in flight, as its caller holds it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pid: int | None = None

    def started(self) -> None:
        """Block until the run was decided and is launching; raise its refusal or error
        (``CodexBoxError``, with the exit code the CLI would leave with)."""
        if self.pid is None:
            self._next()

    def wait(self) -> dict[str, Any]:
        """Block until the run ends: its ``result`` (``result_dict`` plus ``warnings``
        and ``cancelled``), or raise its ``CodexBoxError``."""
        while True:
            result = self._next()
            if result is not None:
                return result

    def _next(self) -> dict[str, Any] | None:
        received = wire.recv(self.sock)
        if received is None:
            raise SandboxSetupError(
                "the run's process ended without a result",
                hint="see the server's log; `codex-box gc` removes what it left",
            )
        event, fds = received
        for fd in fds:
            os.close(fd)
        if event.get("event") == "started":
            self.pid = int(event["pid"])
            return None
        if event.get("event") == "result":
            return dict(event["result"])
        kind = _ERRORS.get(str(event.get("class")), CodexBoxError)
        error = kind(str(event.get("message")), hint=str(event.get("hint") or ""))
        error.exit_code = int(event.get("exit_code", EXIT_SETUP))
        raise error

    def cancel(self) -> None:
        """Stop the run (idempotent, any thread): the child sees its channel end, and
        still sends its result (recorded as cancelled), which ``wait`` returns."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()


class ForkServer:
    """The caller's handle on the fork server (thread-safe)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = dict(environ)
        self._lock = threading.Lock()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._control = ours
        with theirs:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-m",
                    "orchestrator.runner.forkserver",
                    str(theirs.fileno()),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                close_fds=True,
                start_new_session=True,  # the terminal's Ctrl-C is the server's to handle
                env=self.environ,
                cwd="/",
            )

    def launch(
        self, request: Mapping[str, Any], stdio: tuple[int, int, int], *, cwd: str = "/"
    ) -> RunChannel:
        """Start one run of ``request`` (``forked_run.decode``'s fields) with ``stdio``
        (the caller keeps and closes its own copies)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with theirs, self._lock:
                try:
                    wire.send(self._control, {"op": "run"}, [theirs.fileno()])
                except OSError as exc:
                    raise SandboxSetupError(
                        f"the server's fork server is gone ({exc})",
                        hint="restart `codex-box serve`",
                    ) from exc
            wire.send(ours, {"request": dict(request), "environ": self.environ, "cwd": cwd}, stdio)
        except BaseException:
            ours.close()
            raise
        return RunChannel(ours)

    def close(self, *, timeout_s: float = CHILDREN_GRACE_S + 2) -> None:
        """Stop it: runs still in flight are cancelled (their channels are the caller's
        to close first), then it exits."""
        self._control.close()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _serve(control: socket.socket) -> None:
    """The fork server's loop: one child per channel received, reaped as they end."""
    from . import forked_run

    forked_run.warm_up()
    children: set[int] = set()
    while True:
        ready = select.select([control], [], [], 0.5)[0]
        _reap(children)
        if not ready:
            continue
        try:
            received = wire.recv(control)
        except OSError:
            received = None
        if received is None:
            break
        _, fds = received
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:  # the child: its channel only
            status = 1
            try:
                control.close()
                status = forked_run.main(socket.socket(fileno=fds[0]))
            finally:
                os._exit(status)
        os.close(fds[0])
        children.add(pid)
    # The caller is gone (or stopping): every run's channel closed with it, so each
    # child is cancelling its command; wait for them, then kill what still lives.
    deadline = time.monotonic() + CHILDREN_GRACE_S
    while children and time.monotonic() < deadline:
        time.sleep(0.05)
        _reap(children)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap(children, block=True)


def _reap(children: set[int], *, block: bool = False) -> None:
    for pid in list(children):
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
            if done == 0:
                continue
        children.discard(pid)


def main(argv: Sequence[str]) -> int:
    # The server's SIGINT is not ours (own session already); a SIGTERM at the server's
    # shutdown is answered by closing the control socket, not by dying mid-fork.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _serve(socket.socket(fileno=int(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
