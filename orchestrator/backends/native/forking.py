"""Starting the native launcher as a fork of codex-box, and waiting for it.

Owns: when a fork is safe (this process has one thread), what the forked launcher
keeps of codex-box (stdin/stdout/stderr or the run's pty, and the descriptors named by
the caller: nothing else; its argv and environment blocks are zeroed), and ``Forked``,
the launcher process ``launch`` waits for (a ``pty_relay.Process``, like a Popen).
Does not own: the launch plan, or what the launcher does (``sandbox.linux.launcher``).

Why a fork: starting a second interpreter (``python -I -m ...launcher``) and importing
the launcher costs more than everything else a native run does. A fork of a process
with other threads could copy a lock one of them holds, so then ``launch`` still starts
the interpreter. Every module the launcher needs is imported here, before any fork, so
the forked launcher imports nothing (a planted module in the workspace cannot run).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import subprocess
import time
from collections.abc import Collection, Iterable
from typing import Any, NoReturn

from orchestrator.backends.pty_relay import Process
from orchestrator.sandbox.linux import launcher, libc

_POLL_S = 0.005  # only without pidfd_open (Linux < 5.3)


def safe() -> bool:
    """True when this process has exactly one thread. ``/proc/self/task`` also counts
    threads that C extensions started, which ``threading`` does not know about."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def fork_launcher(
    plan: dict[str, Any], *, status_fd: int, keep: Collection[int], stdio: int | None
) -> Process:
    """Fork; the child becomes the launcher of ``plan``. ``keep``: the descriptors it
    keeps besides 0-2 (``status_fd`` among them); ``stdio``: the pty slave that becomes
    its 0-2, or None to keep codex-box's."""
    # Exactly the plan an exec'd launcher would read from its pipe (lists, not tuples).
    plan = json.loads(json.dumps(plan))
    # Signals wait until each side is ready: a Ctrl-C in the child before its handlers
    # are reset would raise KeyboardInterrupt into codex-box's own frames (their
    # `finally` blocks remove the run's cgroup and placeholders).
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        raise
    if pid == 0:  # pragma: no cover - the child never returns (coverage cannot see it)
        try:
            _become(plan, status_fd, keep, stdio, blocked)
        finally:
            os._exit(launcher.EXIT_SETUP)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return Forked(pid)


def _become(
    plan: dict[str, Any],
    status_fd: int,
    keep: Collection[int],
    stdio: int | None,
    mask: Iterable[int],
) -> NoReturn:
    # As a fresh interpreter would start: default dispositions for what codex-box
    # handles itself (SIGINT raises KeyboardInterrupt), then the caller's signal mask.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    if stdio is not None:
        for fd in (0, 1, 2):
            os.dup2(stdio, fd)
    _close_all_except({0, 1, 2, *keep})
    libc.scrub_inherited_arguments_and_environment()
    launcher.become(plan, status_fd)


def _close_all_except(keep: set[int]) -> None:
    """What ``close_fds=True`` does for a subprocess: no descriptor codex-box holds (or
    inherited from its own parent) reaches the launcher, pid 1 or the command. The open
    ones are listed, as subprocess does (a range up to the limit would be a million
    close() calls wherever close_range(2) is refused)."""
    try:
        open_fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: every number up to the hard limit
        open_fds = list(range(resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    for fd in open_fds:
        if fd not in keep:
            with contextlib.suppress(OSError):  # listdir's own descriptor, already gone
                os.close(fd)


class Forked:
    """A forked launcher, waited for through a pidfd (no polling)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.args = ["<forked native launcher>"]
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self._pidfd = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reaped(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is not None:
            return self.returncode
        if timeout is not None and not self._exits_within(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        _, status = os.waitpid(self.pid, 0)
        return self._reaped(status)

    def _exits_within(self, timeout: float) -> bool:
        if self._pidfd is not None:
            return bool(select.select([self._pidfd], [], [], timeout)[0])
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)
        return True

    def _reaped(self, status: int) -> int:
        code = os.waitstatus_to_exitcode(status)  # -N: killed by signal N
        self.returncode = code
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        return code
