"""One run in a child of the fork server (``forkserver``): the request read from its
channel, run exactly as ``codex-box run`` runs it, the result sent back.

Owns: the child's side — its stdio (the three descriptors that came with the request),
its own process group, the run's request decoded from JSON, the cancel watcher (the
channel closed: stop the command, record the end as cancelled) and the one answer.
Does not own: any decision (``pipeline.Runner``).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import signal
import socket
import time
from collections.abc import Mapping
from types import FrameType
from typing import Any

from orchestrator.core.errors import EXIT_SETUP, CodexBoxError, UsageError
from orchestrator.core.options import LaunchOptions
from orchestrator.sandbox.linux import wire

_ERRORS = "orchestrator.core.errors"  # the kinds a caller can tell apart
CANCEL_REPEAT_S = 0.25  # a SIGTERM before the backend forwards them is repeated
CANCEL_ESCALATE_S = 1.0  # then Ctrl-C's escalation, for a command that ignores SIGTERM
CANCEL_KILL_S = 7.0  # then the run's own process is killed (gc removes what is left)


def warm_up() -> None:
    """Import what a run needs, once, in the fork server: each child starts warm."""
    from orchestrator.backends import base
    from orchestrator.policy import gate  # noqa: F401 -- the Starlark engine

    from . import pipeline, views  # noqa: F401

    for name in base.REGISTRY:
        with contextlib.suppress(Exception):  # a backend that cannot load here: cold later
            base.load(name)
    # Everything made so far is shared with every child: freeze it out of the collector,
    # whose passes would otherwise write to (and so copy) each inherited page.
    gc.freeze()


def decode(request: Mapping[str, Any]) -> Any:
    """The ``RunRequest`` of a JSON request (fields as ``serve`` accepts them)."""
    from .pipeline import RunRequest

    def text(key: str) -> str | None:
        value = request.get(key)
        return None if value is None else str(value)

    argv = request.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise UsageError("argv must be a non-empty list of strings")
    return RunRequest(
        argv=tuple(argv),
        profile=text("profile"),
        workspace=text("workspace"),
        backend=text("backend"),
        options=LaunchOptions(
            env_names=tuple(str(e) for e in request.get("env") or ()),
            timeout=text("timeout"),
            memory=text("memory"),
            pids=text("pids"),
            cpus=text("cpus"),
            image=text("image"),
        ),
        trust_opt_in=bool(request.get("trust")),
        approve=bool(request.get("approve")),
        policy_mode=text("policy_mode"),
    )


class _Cancel:
    """The channel's end seen (SIGIO), and the steps that stop the run after it (an
    interval timer, SIGALRM). No thread: with a second thread alive, each launch here
    took twice as long (the sandbox's own forks and cgroup moves, measured 42 → 100 ms).

    Steps: SIGTERM to ourselves every ``CANCEL_REPEAT_S`` (the backend forwards it to the
    sandbox once it waits for the command; before that it is ignored here, and the
    launch is refused by ``Runner``); a command that ignores it gets exactly three
    SIGINTs, which walk the backend's Ctrl-C escalation (SIGINT, SIGTERM, SIGKILL to the
    whole sandbox) to its end — sent only while the backend waits, so none lands after
    the run ended, where it would cut its end record short; a run still alive at
    ``CANCEL_KILL_S`` is killed with its process (``gc`` removes a container left)."""

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.runner: Any = None  # the run's Runner, once made
        self.began: float | None = None
        self.interrupts = 0

    def is_set(self) -> bool:
        return self.began is not None

    def watch(self) -> None:
        signal.signal(signal.SIGIO, self._on_io)
        signal.signal(signal.SIGALRM, self._step)
        fd = self.channel.fileno()
        fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
        self._on_io(signal.SIGIO, None)  # it may have ended before we asked

    def _on_io(self, _signum: int, _frame: FrameType | None) -> None:
        if self.began is not None or not self._ended():
            return
        self.began = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        signal.setitimer(signal.ITIMER_REAL, CANCEL_REPEAT_S, CANCEL_REPEAT_S)

    def _ended(self) -> bool:
        """The caller's side is closed (SIGIO also comes when we may write)."""
        try:
            return self.channel.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _step(self, _signum: int, _frame: FrameType | None) -> None:
        elapsed = time.monotonic() - (self.began or time.monotonic())
        if elapsed >= CANCEL_KILL_S:
            os.kill(os.getpid(), signal.SIGKILL)
        elif elapsed < CANCEL_ESCALATE_S:
            os.kill(os.getpid(), signal.SIGTERM)
        elif (
            self.interrupts < 3
            and self.runner is not None
            and self.runner.in_backend
            and elapsed >= CANCEL_ESCALATE_S + self.interrupts * 0.5  # two a second
        ):
            self.interrupts += 1
            os.kill(os.getpid(), signal.SIGINT)


def main(channel: socket.socket) -> int:
    """The child's whole life; its exit status (the answer went over the channel)."""
    os.setsid()  # its own group: the server's terminal and signals are not its own
    gc.disable()  # one short run: collecting would only copy the parent's pages
    # A handler (not SIG_IGN, which a command would inherit across exec): a SIGTERM
    # that arrives while no backend forwards it must not kill the run before its end
    # is recorded; the cancel repeats it until one does.
    signal.signal(signal.SIGTERM, _ignore)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the backends' Ctrl-C path
    received = wire.recv(channel)
    if received is None:
        return 0
    message, fds = received
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        return 1
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    cancel = _Cancel(channel)
    cancel.watch()
    answer: dict[str, Any]
    try:
        answer = {"event": "result", "result": _run(channel, message, cancel)}
    except CodexBoxError as exc:
        answer = {
            "event": "error",
            "class": next(k.__name__ for k in type(exc).__mro__ if k.__module__ == _ERRORS),
            "message": exc.message,
            "hint": exc.hint,
            "exit_code": exc.exit_code,
        }
    except KeyboardInterrupt:  # the cancel's escalation arrived outside a backend's wait
        answer = {"event": "error", "message": "cancelled", "exit_code": EXIT_SETUP}
    except Exception as exc:
        answer = {"event": "error", "message": f"internal error: {exc!r}", "exit_code": EXIT_SETUP}
    signal.setitimer(signal.ITIMER_REAL, 0)
    with contextlib.suppress(OSError):
        wire.send(channel, answer)
    return 0


def _run(channel: socket.socket, message: Mapping[str, Any], cancel: _Cancel) -> dict[str, Any]:
    from .context import HostContext
    from .pipeline import Runner

    context = HostContext.from_environ(message["environ"], cwd=str(message.get("cwd") or "/"))
    runner = Runner(context, decode(message["request"]), cancelled=cancel.is_set)
    cancel.runner = runner
    prepared = runner.prepare()  # a refusal is raised (and audited) here
    # Decided: the caller answers its client now (a refusal would have been an error).
    wire.send(channel, {"event": "started", "pid": os.getpid()})
    outcome = runner.run(prepared)
    result = runner.result(outcome)
    resolution = runner.resolution
    warnings = [*(resolution.warnings() if resolution else ()), *outcome.warnings]
    return {**result, "warnings": [str(w) for w in warnings], "cancelled": cancel.is_set()}


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    return None
