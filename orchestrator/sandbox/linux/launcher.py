"""The native Linux sandbox, as the process that becomes it.

Forked from codex-box when codex-box is single-threaded (``become``: no second
interpreter to start), else run as ``python -I -m orchestrator.sandbox.linux.launcher
PLAN_FD STATUS_FD``. ``-I`` keeps the workspace (the cwd) and PYTHON* variables out of
``sys.path``: a planted ``orchestrator/`` package in the workspace must not run before the
sandbox exists; a forked launcher imports nothing at all (every import here is at the
top, done by codex-box before it forks).

Shape (as root or not; always in a new user namespace):

    launcher ── unshare(user, mount, pid, ipc, uts[, net]) ── fork ──► init (pid 1)
       waits, relays signals                       mounts, Landlock, caps, seccomp
                                                   └─ fork ──► the command (execve)

When init exits the kernel kills everything left in the pid namespace, and init dies
with the launcher (PDEATHSIG), which dies with codex-box: no process outlives a run.
Owns: executing a launch plan. Does not own: making the plan (``backends.native``).
Imports only the standard library and ``sandbox.linux`` modules: it is on every launch's path.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import termios
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, NoReturn

from . import caps, filesystem, landlock, mounts, seccomp, session_root
from .libc import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    PR_SET_CHILD_SUBREAPER,
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    prctl,
    unshare,
)
from .proctree import kill_tree

FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
# Terminal-generated signals already reach the command (same process group):
# relaying them too would deliver each twice.
IGNORED = (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
EXIT_SETUP = 125
PLAN_VERSION = 2  # must match backends.native.plan.PLAN_VERSION (a test checks)


class Status:
    """JSON lines to codex-box: pid of init, setup errors, exec errors, how the command ended."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_inheritable(fd, False)  # never leaks into the command

    def send(self, **message: Any) -> None:
        data = (json.dumps(message) + "\n").encode()
        # If codex-box is gone, PDEATHSIG is already taking us down: nothing to report to.
        with contextlib.suppress(OSError):
            os.write(self.fd, data)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def main(argv: list[str]) -> NoReturn:
    """As its own interpreter: the plan arrives on a pipe."""
    become(json.loads(_read_all(int(argv[1]))), int(argv[2]))


def become(plan: dict[str, Any], status_fd: int) -> NoReturn:
    """Execute ``plan``, reporting on ``status_fd``; never returns. Also the entry of a
    launcher forked from codex-box (``backends.native.launch``): then every module this
    needs is already imported, and nothing of codex-box's state is used."""
    status = Status(status_fd)
    try:
        if plan.get("version") != PLAN_VERSION:  # e.g. an upgrade between plan and launch
            raise ValueError(
                f"launch plan version {plan.get('version')!r}, launcher understands {PLAN_VERSION}"
            )
        if not plan["sandbox"]:
            _run_unsandboxed(plan, status)
        _launch(plan, status)
    except Exception as exc:  # report every setup failure; never run half-sandboxed
        status.send(setup_error=f"{type(exc).__name__}: {exc}")
        os._exit(EXIT_SETUP)


def _die_with_parent(plan: dict[str, Any]) -> None:
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != plan["parent_pid"]:  # the parent died before PDEATHSIG was armed
        os._exit(EXIT_SETUP)
    if plan["own_pty"]:  # the pty codex-box made for -t becomes our controlling terminal
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _run_unsandboxed(plan: dict[str, Any], status: Status) -> NoReturn:
    """`trusted`: no sandbox, but the run still owns its whole process tree."""
    _die_with_parent(plan)
    _join_cgroups(plan)
    _apply_limits(plan)  # trusted lifts the sandbox, not the limits the user asked for
    prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans re-parent to us, not to the host's init
    if "session_fd" in plan:  # no pid namespace: serve() kills what is left at its end
        status.send(sandboxed=True)
        session_root.serve(plan["session_fd"], own_pid_namespace=False)
    launcher = os.getpid()
    try:
        child = os.fork()
    except BlockingIOError as exc:
        # As a normal user without a cgroup, --pids is RLIMIT_NPROC; a trusted run has no
        # user namespace of its own, so the kernel counts every process of this user on
        # the host against it, and a limit below that count stops the command's own fork.
        limit = plan["limits"]["pids"]
        if limit is None or plan["cgroup_procs"]:
            raise
        raise OSError(
            exc.errno,
            f"--pids {limit} stops the command from starting: a trusted run has no user "
            "namespace, so RLIMIT_NPROC counts every process of this user; pass a larger "
            "--pids or --pids 0, or give codex-box a writable cgroup",
        ) from exc
    if child == 0:
        # No pid namespace here: the command must die with us if codex-box is killed.
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != launcher:
            os._exit(EXIT_SETUP)
        _exec_command(plan, status)
    _relay_signals_to(child)
    code = _reap_until(child, status)
    kill_tree(os.getpid())  # what the command left running ends with the run
    os._exit(code)


def _launch(plan: dict[str, Any], status: Status) -> NoReturn:
    _die_with_parent(plan)
    _join_cgroups(plan)
    # Read these inputs now: /proc/net/unix lists only this network namespace's
    # sockets, and the seccomp file may lie under /tmp, which pid 1 replaces. (Pid 1
    # opens the write roots itself, in its mount namespace, before any tmpfs.)
    sockets = mounts.host_unix_sockets() if plan["mounts"]["mask_host_unix_sockets"] else []
    syscall_filter = seccomp.load_file(plan["seccomp"])
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if plan["network"] == "none" or "egress_port" in plan:
        flags |= CLONE_NEWNET
    unshare(flags)
    _map_ids(uid, gid)
    if "egress_port" in plan:
        _hand_over_egress_listener(plan["egress_fd"], plan["egress_port"])
    report_r, report_w = os.pipe()
    lifeline_r, lifeline_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        # Pid 1 never holds codex-box's pipe: it reports to us, and we pass on only
        # what we can check. The pid that codex-box may kill comes from us alone.
        os.close(status.fd)
        os.close(report_r)
        os.close(lifeline_w)
        report = Status(report_w)
        try:
            _init(plan, report, sockets, syscall_filter, lifeline_r)
        except Exception as exc:
            report.send(setup_error=f"{type(exc).__name__}: {exc}")
        os._exit(EXIT_SETUP)
    os.close(report_w)
    os.close(lifeline_r)
    if "session_fd" in plan:  # pid 1's alone: its end closes when pid 1 dies
        os.close(plan["session_fd"])
    status.send(pid1=pid)
    _relay_signals_to(pid)
    _pass_on_reports(report_r, status)
    _, wait_status = os.waitpid(pid, 0)
    os._exit(_exit_code(wait_status))


# What pid 1 may tell codex-box, and the type of each value. Anything else is dropped.
_REPORT_FIELDS = {
    "setup_error": str,
    "sandboxed": bool,
    "exec_errno": int,
    "argv0": str,
    "exit": int,
    "signal": int,
}
_REPORT_BUDGET = 64 * 1024


def _pass_on_reports(report: int, status: Status) -> None:
    """Relay pid 1's reports until it exits: checked, bounded, never blocking pid 1."""
    budget, pending = _REPORT_BUDGET, b""
    while chunk := os.read(report, 65536):
        budget -= len(chunk)
        if budget < 0:
            continue  # keep draining so pid 1 can never block on a full pipe
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                if isinstance(message, dict):
                    checked = {
                        k: v
                        for k, v in message.items()
                        if k in _REPORT_FIELDS and type(v) is _REPORT_FIELDS[k]
                    }
                    if checked:
                        status.send(**checked)
    os.close(report)


def _hand_over_egress_listener(channel_fd: int, port: int) -> None:
    """Bring up this namespace's loopback, listen on 127.0.0.1:port, and pass the
    socket to codex-box, whose egress proxy accepts on it. The namespace has no other
    interface: the proxy is the sandbox's only way out. Done before pid 1 exists, and
    the command never holds either descriptor."""
    with socket.socket(fileno=channel_fd) as channel:
        _loopback_up()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("127.0.0.1", port))
            listener.listen(128)
            socket.send_fds(channel, [b"L"], [listener.fileno()])


def _loopback_up() -> None:
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def _map_ids(uid: int, gid: int) -> None:
    """Keep our own uid/gid inside the new user namespace: files we write stay ours."""
    _write_file("/proc/self/setgroups", b"deny")
    _write_file("/proc/self/uid_map", f"{uid} {uid} 1\n".encode())
    _write_file("/proc/self/gid_map", f"{gid} {gid} 1\n".encode())


def _write_file(path: str, data: bytes) -> None:
    """One write of ``data`` (bytes: a forked launcher loads no text codec module)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _init(
    plan: dict[str, Any],
    report: Status,
    sockets: list[str],
    syscall_filter: seccomp.Filter,
    lifeline: int,
) -> NoReturn:
    # Not dumpable: the command (same uid, same Landlock domain) cannot open our
    # descriptors or memory through /proc/1/fd or /proc/1/mem.
    prctl(PR_SET_DUMPABLE, 0)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if select.select([lifeline], [], [], 0)[0]:  # EOF: the launcher already died
        os._exit(EXIT_SETUP)
    os.close(lifeline)
    visible = filesystem.build(plan["mounts"], sockets)
    # The command starts in the workspace it was checked to be, whatever its name
    # names now; Landlock's write rules attach to the same inodes.
    plan["cwd_fd"] = visible[plan["mounts"]["workspace"]]
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    ll = plan["landlock"]
    landlock.enforce(
        read_roots=ll["read"],
        write_roots=[f"/proc/self/fd/{visible[p]}" if p in visible else p for p in ll["write"]],
        device_files=ll["devices"],
        deny_tcp=ll["deny_tcp"],
        scope=ll["scope"],
        scope_required=ll["scope_required"],
    )
    _apply_limits(plan)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core files full of secrets
    caps.drop_all()
    seccomp.load(syscall_filter)
    report.send(sandboxed=True)
    if "session_fd" in plan:  # a session: each exec is forked from here, as confined
        for fd in visible.values():
            os.close(fd)
        session_root.serve(plan["session_fd"])
    child = os.fork()
    if child == 0:
        _exec_command(plan, report)
    for fd in visible.values():
        os.close(fd)
    _relay_signals_to(child)
    # Leaving pid 1 makes the kernel kill whatever the command left behind.
    os._exit(_reap_until(child, report))


def _reap_until(child: int, status: Status) -> int:
    """Reap every child (we are pid 1 or a subreaper) until ``child`` ends; report it."""
    while True:
        pid, wait_status = os.wait()
        if pid == child:
            code = _exit_code(wait_status)
            if os.WIFSIGNALED(wait_status):
                status.send(exit=code, signal=os.WTERMSIG(wait_status))
            else:
                status.send(exit=code)
            return code


def _join_cgroups(plan: dict[str, Any]) -> None:
    """Before any fork: no process of the run may start outside the cgroup."""
    for procs in plan["cgroup_procs"]:
        _write_file(procs, str(os.getpid()).encode())


def _apply_limits(plan: dict[str, Any]) -> None:
    limits = plan["limits"]
    if plan["cgroup_procs"]:
        return  # the cgroup enforces pids and memory
    if limits["pids"] is not None:
        if os.geteuid() == 0:
            # The kernel never applies RLIMIT_NPROC to uid 0: refuse, don't pretend.
            raise OSError(
                errno.EPERM,
                "cannot limit processes for uid 0 without a cgroup; "
                "run as a normal user, give codex-box a writable cgroup, or --pids 0",
            )
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["pids"], limits["pids"]))
    if limits["memory_bytes"] is not None and limits["memory_required"]:
        # (The default share of RAM is dropped here: documented as best effort.)
        # RLIMIT_DATA/AS are per process and blind to tmpfs and shared memory: refuse
        # rather than pretend a limit holds.
        raise OSError(
            errno.EPERM,
            "cannot enforce --memory without a writable cgroup "
            "(run as root, or delegate a cgroup v2 subtree to this user)",
        )


def _relay_signals_to(pid: int) -> None:
    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    for sig in IGNORED:
        signal.signal(sig, signal.SIG_IGN)


def _exec_command(plan: dict[str, Any], status: Status) -> NoReturn:
    # Ignored signals survive execve; Python itself ignores SIGPIPE and SIGXFSZ.
    for sig in (*FORWARDED, *IGNORED, signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    argv: list[str] = plan["argv"]
    try:
        if "cwd_fd" in plan:
            os.fchdir(plan["cwd_fd"])  # close-on-exec: the command never holds it
        else:
            os.chdir(plan["cwd"])
        os.execvpe(argv[0], argv, plan["env"])  # noqa: S606 -- becoming the command is the point
    except OSError as exc:
        status.send(exec_errno=exc.errno, argv0=argv[0])
        os._exit(127 if exc.errno in (errno.ENOENT, errno.ENOTDIR) else 126)


def _exit_code(wait_status: int) -> int:
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


if __name__ == "__main__":
    main(sys.argv)
