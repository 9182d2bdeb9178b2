"""The supervisor of one exec in a native session: a fork of the session's pid 1 that
owns the exec's whole process tree.

It is a subreaper: every process the command leaves behind (``setsid sleep 300 &``
included) is re-parented to it, and when the command ends — or its timeout passes, or
pid 1 asks (``KILL_TREE``) — it kills them all before it reports how the command ended
on its pipe to pid 1. A detached exec's tree lives on until it ends or the session
does. Pid 1 (``session_root``) backs it up: a supervisor that was stopped or killed,
or is past its exec's timeout, is killed by pid 1 along with its orphans.
Imports only the standard library and ``sandbox.linux`` modules.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import time
from typing import Any, NoReturn

from .libc import PR_SET_CHILD_SUBREAPER, prctl
from .proctree import children_map

# Signals the supervisor passes to its command (Ctrl-C at the client, a stop).
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR2)
KILL_TREE = signal.SIGUSR1  # from pid 1: end this exec's whole tree now
_WAITED = {signal.SIGCHLD, KILL_TREE, *FORWARDED}
REAP_DEADLINE_S = 10.0  # a fork bomb racing the kill loop, bounded by the pids limit


def supervise(message: dict[str, Any], fds: list[int], report: int, keep: list[int]) -> NoReturn:
    _close_others(keep)
    prctl(PR_SET_CHILD_SUBREAPER, 1)  # every orphan of this exec comes back to us
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _WAITED)
    # Pid 1 ignores every signal (``session_root._ignore_signals``); we inherit that.
    # The ones we wait for go back to their default: blocked, no default action runs and
    # each waits for ``sigwaitinfo`` (POSIX lets an ignored one be discarded even while
    # blocked, and an ignored SIGCHLD would reap our children itself). Every other
    # signal stays ignored: a command cannot end its supervisor with one.
    for waited in _WAITED:
        signal.signal(waited, signal.SIG_DFL)
    argv = [str(a) for a in message["argv"]]
    try:
        child = os.fork()
    except OSError as exc:  # the pids limit (a fork bomb in another exec): say so
        outcome = {"exit": 125, "detail": cannot_start(exc)}
        os.write(report, (json.dumps(outcome) + "\n").encode())
        os._exit(0)
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
        # Ignored signals stay ignored over execve, and pid 1 ignores them all (Python
        # itself ignores SIGPIPE and SIGXFSZ): the command starts with every one at its
        # default, as with `run` (Ctrl-C, a closed pipe). Before unblocking: no
        # inherited handler of pid 1's may run here.
        for signum in range(1, signal.NSIG):
            if signum not in (signal.SIGKILL, signal.SIGSTOP):
                with contextlib.suppress(OSError, ValueError):  # the C library's (32, 33)
                    signal.signal(signum, signal.SIG_DFL)
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


def cannot_start(exc: OSError) -> str:
    """The detail of an exec whose command could not be started (no process or
    descriptor left): the exec ends with 125, the session lives on."""
    return f"the session could not start the command: {exc.strerror or exc}"


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
    for pid in children():
        if pid != child:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def children() -> list[int]:
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children", encoding="ascii") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:  # a kernel without CONFIG_PROC_CHILDREN
        return children_map().get(me, [])


def _kill_descendants() -> None:
    """SIGKILL every process below us until none is left. Killing a child re-parents
    its own children to us (we are their subreaper), so the loop reaches them next."""
    deadline = time.monotonic() + REAP_DEADLINE_S
    while time.monotonic() < deadline:
        found = children()
        for pid in found:
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
