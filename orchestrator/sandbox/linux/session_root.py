"""A session's sandbox root: pid 1 of a native session, already confined, running
each exec the keeper sends it.

Pid 1 is built exactly as for a one-shot run (namespaces, mounts, Landlock, no
capabilities, seccomp: ``launcher._init``); instead of one command it then serves the
keeper's channel. Each exec is a fork of pid 1 — so it inherits exactly pid 1's
confinement; nothing joins the sandbox from outside (no setns into a half-built one):

    pid 1 ── fork ──► supervisor (subreaper, per exec) ── fork ──► the command (execve)

The supervisor owns its exec's whole tree: every process the command leaves behind
(``setsid sleep 300 &`` included) is re-parented to it, and when the command ends — or
its timeout passes, or the keeper asks — it kills them all before it reports. A
detached exec's tree lives on until the session ends.

Owns: the exec protocol on the sandbox side (messages ``exec``/``signal``/``kill`` in,
``started``/``exit`` out) and the supervisor. Imports only the standard library and
``sandbox.linux`` modules (it runs inside the sandbox, forked from the launcher).
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
from .libc import PR_SET_CHILD_SUBREAPER, prctl
from .proctree import children_map, kill_tree

# Signals the supervisor passes to its command (Ctrl-C at the client, a stop).
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR2)
KILL_TREE = signal.SIGUSR1  # from pid 1: end this exec's whole tree now
_WAITED = {signal.SIGCHLD, KILL_TREE, *FORWARDED}
_REAP_DEADLINE_S = 10.0  # a fork bomb racing the kill loop, bounded by the pids limit
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
    while True:
        deadlines = [e.deadline for e in execs.values() if e.deadline is not None]
        wait = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
        try:
            ready: list[int] = select.select([channel_fd, wake_r, *execs], [], [], wait)[0]
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


def _from_keeper(
    channel: socket.socket, execs: dict[int, _Exec], *, own_pid_namespace: bool
) -> None:
    try:
        received = wire.recv(channel)
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
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        try:
            # Pid 1's channel and every other exec's pipe are closed here.
            _supervise(message, fds, report_w, keep=[report_w, *fds])
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
    deadline = time.monotonic() + _REAP_DEADLINE_S
    while time.monotonic() < deadline:
        _reap_finished()
        strays = [pid for pid in _children() if pid not in _SUPERVISORS]
        if not strays:
            return
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.002)


# --- the supervisor of one exec ----------------------------------------------------


def _supervise(message: dict[str, Any], fds: list[int], report: int, keep: list[int]) -> NoReturn:
    _close_others(keep)
    prctl(PR_SET_CHILD_SUBREAPER, 1)  # every orphan of this exec comes back to us
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _WAITED)
    argv = [str(a) for a in message["argv"]]
    child = os.fork()
    if child == 0:
        _become_command(argv, message, fds, report, previous)
    for fd in fds:
        os.close(fd)
    timeout = message.get("timeout_s")
    deadline = None if timeout is None else time.monotonic() + float(timeout)
    code, signum, timed_out = _wait_command(child, deadline)
    if not message.get("detach"):
        _kill_descendants()  # what the command left running ends with the exec
    outcome = {"exit": code, "signal": signum, "timed_out": timed_out}
    os.write(report, (json.dumps(outcome) + "\n").encode())
    os.close(report)
    _reap_all()  # detached: the rest of its tree lives until it ends or the session does
    os._exit(0)


def _become_command(
    argv: list[str], message: dict[str, Any], fds: list[int], report: int, mask: Any
) -> NoReturn:
    try:
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.setsid()  # its own session and process group, as a shell's job would get
        for sig in (*FORWARDED, KILL_TREE, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        try:
            os.chdir(str(message["cwd"]))
        except OSError as exc:
            _failed(report, "cwd_errno", exc.errno or errno.EIO, str(message["cwd"]))
        env = {str(k): str(v) for k, v in message["env"]}
        os.execvpe(argv[0], argv, env)  # noqa: S606 -- becoming the command is the point
    except OSError as exc:
        _failed(report, "exec_errno", exc.errno or errno.EIO, argv[0])
    os._exit(126)


def _failed(report: int, key: str, number: int, what: str) -> NoReturn:
    # A line before the supervisor's own report: it reads this back (``_exec_failure``).
    os.write(report, (json.dumps({key: number, "argv0": what}) + "\n").encode())
    missing = number in (errno.ENOENT, errno.ENOTDIR)
    os._exit(125 if key == "cwd_errno" else 127 if missing else 126)


def _wait_command(child: int, deadline: float | None) -> tuple[int, int | None, bool]:
    """(exit code, signal, timed out) of the command; forwards signals meanwhile.
    Signals were blocked before the fork: none is lost between fork and here."""
    while True:
        info: signal.struct_siginfo | None
        if deadline is None:
            info = signal.sigwaitinfo(_WAITED)
        else:
            info = signal.sigtimedwait(_WAITED, max(0.0, deadline - time.monotonic()))
        if info is None:  # the deadline passed: the whole tree goes (its status too)
            _kill_descendants()
            return 124, None, True
        if info.si_signo == signal.SIGCHLD:
            pid, status = os.waitpid(child, os.WNOHANG)
            if pid == child:
                if os.WIFSIGNALED(status):
                    signum = os.WTERMSIG(status)
                    return 128 + signum, signum, False
                return os.WEXITSTATUS(status), None, False
            _reap_strays(child)
        elif info.si_signo == KILL_TREE:
            _kill_descendants()  # the command among them, reaped there
            return 128 + signal.SIGKILL, signal.SIGKILL, False
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, info.si_signo)


def _reap_strays(child: int) -> None:
    """Reap orphans that ended (never the command: its status is ours to read)."""
    for pid in _children():
        if pid != child:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _children() -> list[int]:
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children", encoding="ascii") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:  # a kernel without CONFIG_PROC_CHILDREN
        return children_map().get(me, [])


def _kill_descendants() -> None:
    """SIGKILL every process below us until none is left. Killing a child re-parents
    its own children to us (we are their subreaper), so the loop reaches them next."""
    deadline = time.monotonic() + _REAP_DEADLINE_S
    while time.monotonic() < deadline:
        children = _children()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            pid, _ = os.waitpid(-1, 0)  # one ended: look again
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def _reap_all() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def _close_others(keep: list[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
