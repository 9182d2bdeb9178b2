"""A session's sandbox root: pid 1 of a native session, already confined, running
each exec the keeper sends it.

Pid 1 is built exactly as for a one-shot run (namespaces, mounts, Landlock, no
capabilities, seccomp: ``launcher._init``); instead of one command it then serves the
keeper's channel. Each exec is a fork of pid 1 — so it inherits exactly pid 1's
confinement; nothing joins the sandbox from outside (no setns into a half-built one):

    pid 1 ── fork ──► supervisor (subreaper, per exec) ── fork ──► the command (execve)

The supervisor (``supervisor``) owns its exec's whole tree; pid 1 backs it up, killing
a supervisor that was stopped or killed, or is past its exec's timeout, and every
orphan that then comes to pid 1.

Owns: the exec protocol on the sandbox side (messages ``exec``/``signal``/``kill`` in,
``started``/``exit`` out), each exec's deadline, the strays, and pid 1's own signal
dispositions (all ignored but SIGCHLD: no exec can end pid 1 with one). Imports only the
standard library and ``sandbox.linux`` modules (it runs inside the sandbox, forked
from the launcher).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import socket
import time
from typing import Any, NoReturn

from . import wire
from .proctree import kill_tree
from .supervisor import (
    FORWARDED,
    KILL_TREE,
    REAP_DEADLINE_S,
    cannot_start,
    children,
    supervise,
)

_REPORT_BUDGET = 4096


class _Exec:
    __slots__ = ("data", "deadline", "exec_id", "forced", "pid")

    def __init__(self, exec_id: str, pid: int, deadline: float | None) -> None:
        self.exec_id = exec_id
        self.pid = pid
        self.data = b""  # the supervisor's report lines, read until it closes the pipe
        # When pid 1 kills the supervisor itself, if it has not ended by then: its own
        # timeout plus a grace, or soon after the keeper asked for a kill. The command
        # may have stopped (SIGSTOP) or killed its supervisor: same uid, same sandbox.
        self.deadline = deadline
        self.forced: dict[str, Any] | None = None  # the report, when pid 1 ended it


# Past its own timeout, a supervisor has this long to end the tree itself; after a
# kill request, this long before pid 1 kills it.
_GRACE_S = 2.0


def serve(channel_fd: int, *, own_pid_namespace: bool = True) -> NoReturn:
    """Pid 1's loop: until the keeper's end of the channel closes, then exit (and the
    kernel kills every process left in the pid namespace). ``own_pid_namespace``
    False (``trusted``: no sandbox): we are a subreaper instead, and kill our tree."""
    channel = socket.socket(fileno=channel_fd)
    execs: dict[int, _Exec] = {}  # by report descriptor
    # SIGCHLD wakes the loop: a supervisor that was stopped must be noticed at once.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    _ignore_signals()
    while True:
        deadlines = [e.deadline for e in execs.values() if e.deadline is not None]
        wait = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
        # poll, not select: select cannot watch a descriptor past 1023 (FD_SETSIZE), and
        # a session with a thousand execs outstanding (detached ones) has such report
        # pipes. Any event counts as ready, as select would call it readable.
        poller = select.poll()
        for fd in (channel_fd, wake_r, *execs):
            poller.register(fd, select.POLLIN)
        try:
            ready = [fd for fd, _ in poller.poll(None if wait is None else wait * 1000)]
        except InterruptedError:
            ready = []
        for fd in ready:
            if fd == channel_fd:
                _from_keeper(channel, execs, own_pid_namespace=own_pid_namespace)
            elif fd == wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
            elif fd in execs:
                _from_supervisor(channel, execs, fd)
                _kill_strays()
        _enforce_deadlines(execs)
        if _reap_finished(execs):
            # Only once a supervisor is reaped have its orphans surely come to us (the
            # kernel re-parents them after the supervisor's pipe closed).
            _kill_strays()


def _ignore_signals() -> None:
    """Every catchable signal but SIGCHLD (the loop's wakeup) is ignored from here on.
    Pid 1 gets only the signals it has a handler for from inside its pid namespace, and
    the launcher may leave it Python's own (``python -I``: SIGINT raises
    KeyboardInterrupt; a fork of codex-box: whatever codex-box had): any exec could then
    end the whole session with ``kill -INT 1``. Ignored dispositions are inherited over
    fork and kept over execve: the supervisor restores the ones it waits for, and the
    command starts with every one at its default (``supervisor._become_command``)."""
    for signum in range(1, signal.NSIG):
        if signum in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD):
            continue
        with contextlib.suppress(OSError, ValueError):  # the C library's own (32, 33)
            signal.signal(signum, signal.SIG_IGN)


def _from_keeper(
    channel: socket.socket, execs: dict[int, _Exec], *, own_pid_namespace: bool
) -> None:
    try:
        received = wire.recv(channel)
    except wire.DescriptorsLost as lost:  # out of descriptors (EMFILE): this exec fails
        if lost.message.get("op") == "exec":
            error = OSError(errno.EMFILE, os.strerror(errno.EMFILE))
            _not_started(channel, str(lost.message.get("exec_id")), [], error)
        return
    except OSError:
        received = None
    if received is None:  # the keeper is gone: so is the session
        if not own_pid_namespace:
            kill_tree(os.getpid())
        os._exit(0)
    message, fds = received
    op = message.get("op")
    if op == "exec":
        _start(channel, execs, message, fds)
        return
    for fd in fds:
        os.close(fd)
    target = next((e for e in execs.values() if e.exec_id == message.get("exec_id")), None)
    if target is None:
        return
    signum = KILL_TREE if op == "kill" else message.get("signal")
    if signum == KILL_TREE:  # the supervisor ends the tree; if it cannot, pid 1 will
        soon = time.monotonic() + _GRACE_S
        target.deadline = soon if target.deadline is None else min(target.deadline, soon)
        target.forced = target.forced or {"exit": 128 + signal.SIGKILL, "signal": signal.SIGKILL}
    if signum in (KILL_TREE, *FORWARDED):
        with contextlib.suppress(ProcessLookupError):
            os.kill(target.pid, signum)


def _start(
    channel: socket.socket, execs: dict[int, _Exec], message: dict[str, Any], fds: list[int]
) -> None:
    exec_id = str(message["exec_id"])
    # Out of descriptors (EMFILE) or of processes (EAGAIN: the pids limit, reached by a
    # fork bomb in another exec) fails this exec alone, never pid 1 and its session.
    try:
        report_r, report_w = os.pipe()
    except OSError as exc:
        _not_started(channel, exec_id, fds, exc)
        return
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(report_r)
        os.close(report_w)
        _not_started(channel, exec_id, fds, exc)
        return
    if pid == 0:  # pragma: no cover - the child never returns
        try:
            # Pid 1's channel and every other exec's pipe are closed here.
            supervise(message, fds, report_w, keep=[report_w, *fds])
        finally:
            os._exit(125)
    os.close(report_w)
    for fd in fds:
        os.close(fd)
    _SUPERVISORS.add(pid)
    timeout = message.get("timeout_s")
    deadline = None if timeout is None else time.monotonic() + float(timeout) + _GRACE_S
    execs[report_r] = _Exec(exec_id, pid, deadline)
    if message.get("detach"):
        wire.send(channel, {"event": "started", "exec_id": exec_id})


def _not_started(channel: socket.socket, exec_id: str, fds: list[int], exc: OSError) -> None:
    """The exec's end, as a supervisor that could not start its command reports it (a
    detached one's waiter also ends on ``exit``)."""
    for fd in fds:
        os.close(fd)
    wire.send(
        channel,
        {
            "event": "exit",
            "exec_id": exec_id,
            "exit": 125,
            "detail": cannot_start(exc),
            "not_started": True,  # a detached exec's caller is told, not given exit 0
        },
    )


def _from_supervisor(channel: socket.socket, execs: dict[int, _Exec], fd: int) -> None:
    """Collect a supervisor's report; at its end (EOF: the supervisor wrote its last
    line and closed the pipe) tell the keeper how the exec ended."""
    done = execs[fd]
    chunk = b""
    with contextlib.suppress(OSError):
        chunk = os.read(fd, _REPORT_BUDGET)
    if chunk:
        if len(done.data) < _REPORT_BUDGET:
            done.data += chunk
        return
    del execs[fd]
    os.close(fd)
    report: dict[str, Any] = {}
    for line in done.data.splitlines():  # the command's child may write one first
        with contextlib.suppress(ValueError):
            parsed = json.loads(line)
            if isinstance(parsed, dict):
                report |= {k: v for k, v in parsed.items() if k in _REPORT_FIELDS}
    if "exit" not in report:
        report = done.forced or {
            "exit": 125,
            "detail": "the exec's supervisor died before it reported",
        }
    wire.send(channel, {"event": "exit", "exec_id": done.exec_id, **report})


_REPORT_FIELDS = ("exit", "signal", "timed_out", "exec_errno", "cwd_errno", "argv0", "detail")


def _enforce_deadlines(execs: dict[int, _Exec]) -> None:
    """Kill the supervisor of every exec past its deadline (a stopped one dies too);
    its report pipe then closes and ``_from_supervisor`` reports ``forced``."""
    now = time.monotonic()
    for one in execs.values():
        if one.deadline is not None and now >= one.deadline:
            one.deadline = None
            if one.forced is None:  # its own timeout passed and it did not act
                one.forced = {"exit": 124, "timed_out": True}
            with contextlib.suppress(ProcessLookupError):
                os.kill(one.pid, signal.SIGKILL)


def _reap_finished(execs: dict[int, _Exec] | None = None) -> bool:
    """Pid 1 reaps whatever ended (supervisors; strays re-parented to it). A stopped
    supervisor is killed: only a command in the sandbox could have stopped it, and a
    stopped supervisor would keep its exec's tree alive past the exec's end and its
    timeout. True when a supervisor was reaped."""
    reaped = False
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG | os.WUNTRACED)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        if os.WIFSTOPPED(status):
            if pid in _SUPERVISORS:
                for one in (execs or {}).values():
                    if one.pid == pid and one.forced is None:
                        one.forced = {
                            "exit": 125,
                            "detail": "the command stopped its exec's supervisor; the exec "
                            "was killed",
                        }
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            continue
        reaped |= pid in _SUPERVISORS
        _SUPERVISORS.discard(pid)


# Every supervisor still running (a detached one outlives its report).
_SUPERVISORS: set[int] = set()


def _kill_strays() -> None:
    """Kill every child of ours that is not a supervisor. There is one only when a
    command killed its own supervisor (same uid, same sandbox: it may), whose orphans
    were then re-parented to us instead of being killed at the exec's end. Killing one
    re-parents its children to us too: look again until none is left (bounded)."""
    deadline = time.monotonic() + REAP_DEADLINE_S
    while time.monotonic() < deadline:
        _reap_finished()
        strays = [pid for pid in children() if pid not in _SUPERVISORS]
        if not strays:
            return
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.002)
