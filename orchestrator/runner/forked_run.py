"""One run in a child of the fork server (``forkserver``): the request read from its
channel, run exactly as ``codex-box run`` runs it, the result sent back.

Owns: the child's side — its stdio (the three descriptors that came with the request),
its own process group, the run's request decoded from JSON, the cancel watcher (the
channel closed: stop the command, record the end as cancelled) and the one answer.
Does not own: any decision (``pipeline.Runner``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
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


def main(channel: socket.socket) -> int:
    """The child's whole life; its exit status (the answer went over the channel)."""
    os.setsid()  # its own group: the server's terminal and signals are not its own
    cancelled = threading.Event()
    # A handler (not SIG_IGN, which a command would inherit across exec): a SIGTERM
    # that arrives while no backend forwards it must not kill the run before its end
    # is recorded; the cancel watcher repeats it until one does.
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
    runners: list[Any] = []  # the run's Runner, once made (the watcher looks at it)
    threading.Thread(target=_watch, args=(channel, cancelled, runners), daemon=True).start()
    answer: dict[str, Any]
    try:
        answer = {"event": "result", "result": _run(channel, message, cancelled, runners)}
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
    with contextlib.suppress(OSError):
        wire.send(channel, answer)
    return 0


def _run(
    channel: socket.socket,
    message: Mapping[str, Any],
    cancelled: threading.Event,
    runners: list[Any],
) -> dict[str, Any]:
    from .context import HostContext
    from .pipeline import Runner
    from .views import result_dict

    context = HostContext.from_environ(message["environ"], cwd=str(message.get("cwd") or "/"))
    runner = Runner(context, decode(message["request"]), cancelled=cancelled.is_set)
    runners.append(runner)
    prepared = runner.prepare()  # a refusal is raised (and audited) here
    # Decided: the caller answers its client now (a refusal would have been an error).
    wire.send(channel, {"event": "started", "pid": os.getpid()})
    outcome = runner.run(prepared)
    result = result_dict(
        outcome.result,
        run_id=runner.run_id,
        session_id=runner.session_id,
        profile=outcome.prepared.spec.profile,
    )
    resolution = runner.resolution
    warnings = [*(resolution.warnings() if resolution else ()), *outcome.warnings]
    return {**result, "warnings": [str(w) for w in warnings], "cancelled": cancelled.is_set()}


def _watch(channel: socket.socket, cancelled: threading.Event, runners: list[Any]) -> None:
    """The caller closed the channel (its client went away, or it died): cancel.

    SIGTERM first, repeated (the backend forwards it to the sandbox once it waits for
    the command; before that it is ignored here and the launch is refused by
    ``Runner``); a command that ignores it gets the backend's Ctrl-C escalation
    (SIGINT → SIGTERM → SIGKILL to its whole sandbox); a run still alive at
    ``CANCEL_KILL_S`` is killed with its process (``gc`` removes a container left)."""
    with contextlib.suppress(OSError):
        while wire.recv(channel) is not None:
            pass
    cancelled.set()
    began = time.monotonic()
    while time.monotonic() - began < CANCEL_ESCALATE_S:
        os.kill(os.getpid(), signal.SIGTERM)  # forwarded to the sandbox by the backend
        time.sleep(CANCEL_REPEAT_S)
    # Still running: it ignores SIGTERM. Exactly three SIGINTs walk the backend's Ctrl-C
    # escalation (SIGINT, SIGTERM, SIGKILL to the whole sandbox) to its end — no more,
    # so none lands after the run ended, where it would cut its end record short.
    for _ in range(3):
        if not (runners and runners[0].in_backend):
            break  # the command ended (or never started): nothing to escalate
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1.0)
    time.sleep(max(0.0, CANCEL_KILL_S - (time.monotonic() - began)))
    os.kill(os.getpid(), signal.SIGKILL)


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    return None
