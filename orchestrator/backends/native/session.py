"""A native session, as its keeper holds it: the launcher started once in session
mode, then each exec sent to the sandbox's pid 1 over one channel.

Owns: starting the session's sandbox (the run's own plan, cgroup and egress handover,
with a channel to pid 1 instead of a command), carrying execs and their stdin, stdout
and stderr (SCM_RIGHTS) to pid 1, matching each ``exit`` back to the thread waiting for
it, and stopping (the launcher killed: pid 1 dies with it, and the kernel empties the
pid namespace; the cgroup removed).
Does not own: what pid 1 does with an exec (``sandbox.linux.session_root``), judging or
auditing an exec (the keeper, ``runner.sessions``).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from orchestrator.backends import cgroups
from orchestrator.backends.base import EgressPort
from orchestrator.core.errors import SandboxSetupError
from orchestrator.core.session import ExecCall, ExecEnd
from orchestrator.core.spec import SandboxSpec
from orchestrator.sandbox.linux import wire
from orchestrator.sandbox.linux.proctree import wait_gone

from .launch import Launch, hide
from .plan import translate

READY_S = 30.0  # building the sandbox; a launcher silent for longer has failed
STOP_GRACE_S = 2.0  # pid 1 exits at once when asked; this is for a wedged one
BACKSTOP_S = 10.0  # past an exec's timeout, for a pid 1 that does not answer


class _Waiter:
    __slots__ = ("done", "end", "started")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.started = threading.Event()
        self.end: dict[str, Any] | None = None


class NativeSession:
    """A ``SessionSandbox`` on the native backend."""

    backend = "native"

    def __init__(self, spec: SandboxSpec, egress: EgressPort | None) -> None:
        if spec.egress is not None and egress is None:  # fail closed: no proxy, no session
            raise SandboxSetupError(
                "this profile's network goes through the egress proxy, but none was given",
                hint="start sessions through codex-box (runner.sessions), which starts the proxy",
            )
        self.spec = spec
        self._launch = Launch(spec, egress, backend=self.backend)
        self._send = threading.Lock()
        self._waiters: dict[str, _Waiter] = {}
        self._lock = threading.Lock()
        self._detached: dict[str, dict[str, Any]] = {}
        self._on_end: dict[str, Callable[[ExecEnd], None]] = {}
        self._stopped = False
        self._group: cgroups.RunCgroup | None = None
        plan = translate(spec)
        hide(spec)
        self._group = cgroups.create(spec.run_id, spec.limits)
        plan["cgroup_procs"] = self._group.procs_files if self._group else []
        plan["parent_pid"] = os.getpid()
        plan["own_pty"] = False
        self._channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        plan["session_fd"] = theirs.fileno()
        try:
            self._proc = self._launch._spawn(plan, (theirs.fileno(),))
        except BaseException:
            self._remove_group()
            raise
        finally:
            theirs.close()
        try:
            self._launch._serve_egress(self._proc)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self._reader = threading.Thread(
            target=self._read_events, name="codex-box-session-events", daemon=True
        )
        self._reader.start()

    def _wait_ready(self) -> None:
        """Until pid 1 says the sandbox is built (or that it could not be)."""
        deadline = time.monotonic() + READY_S
        pending = b""
        while time.monotonic() < deadline:
            if not select.select([self._launch.status_r], [], [], 0.5)[0]:
                if self._proc.poll() is not None:
                    break
                continue
            chunk = os.read(self._launch.status_r, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                with contextlib.suppress(ValueError):
                    message = json.loads(line)
                    if not isinstance(message, dict):
                        continue
                    if isinstance(message.get("pid1"), int):
                        self._launch.pid1 = message["pid1"]
                    if "setup_error" in message:
                        raise SandboxSetupError(
                            f"native sandbox setup failed: {message['setup_error']}",
                            hint="nothing was run; the sandbox could not be built as the "
                            "profile asks",
                        )
                    if message.get("sandboxed"):
                        return
        raise SandboxSetupError(
            "the native session's sandbox did not come up", hint="nothing was run"
        )

    # --- execs -------------------------------------------------------------------

    def exec(
        self,
        call: ExecCall,
        stdio: tuple[int, int, int],
        *,
        on_end: Callable[[ExecEnd], None] | None = None,
    ) -> ExecEnd:
        waiter = _Waiter()
        group = self._group
        oom_before = group.oom_kills() if group is not None else 0
        with self._lock:
            if self._stopped:
                raise SandboxSetupError("the session has stopped", hint="start a new session")
            self._waiters[call.exec_id] = waiter
            if call.detach:
                self._detached[call.exec_id] = {
                    "exec_id": call.exec_id,
                    "argv": list(call.argv),
                    "running": True,
                    "exit_code": None,
                }
                if on_end is not None:
                    self._on_end[call.exec_id] = on_end
        message = {
            "op": "exec",
            "exec_id": call.exec_id,
            "argv": list(call.argv),
            "env": [list(pair) for pair in call.env],
            "cwd": call.cwd,
            "timeout_s": call.timeout_s,
            "detach": call.detach,
        }
        try:
            with self._send:
                wire.send(self._channel, message, stdio)
        except OSError as exc:
            self._forget(call.exec_id)
            raise SandboxSetupError(
                f"the session's sandbox is gone ({exc})", hint="start a new session"
            ) from exc
        if call.detach:
            waiter.started.wait()
            if waiter.end is not None and waiter.end.get("lost"):
                raise SandboxSetupError("the session ended", hint="start a new session")
            if waiter.end is not None and waiter.end.get("not_started"):
                raise SandboxSetupError(
                    str(waiter.end.get("detail")), hint="the session lives on; try again later"
                )
            return ExecEnd(exit_code=0, detail="detached")
        # Pid 1 ends an exec past its timeout even when its supervisor cannot; this is
        # the backstop for a pid 1 that does not answer at all.
        limit = None if call.timeout_s is None else call.timeout_s + BACKSTOP_S
        if not waiter.done.wait(limit):
            self.kill(call.exec_id)
            if not waiter.done.wait(BACKSTOP_S):
                self._forget(call.exec_id)
                return ExecEnd(
                    exit_code=124, timed_out=True, detail="the sandbox did not end the exec"
                )
        self._forget(call.exec_id)
        end = _ending(waiter.end or {"lost": True})
        if end.signal == signal.SIGKILL and group is not None and group.oom_kills() > oom_before:
            end = replace(end, oom_killed=True)
        return end

    def _forget(self, exec_id: str) -> None:
        with self._lock:
            self._waiters.pop(exec_id, None)

    def signal(self, exec_id: str, signum: int) -> None:
        self._tell({"op": "signal", "exec_id": exec_id, "signal": signum})

    def kill(self, exec_id: str) -> None:
        self._tell({"op": "kill", "exec_id": exec_id})

    def _tell(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError), self._send:
            wire.send(self._channel, message)

    def _read_events(self) -> None:
        """The channel's one reader: hands each event to the thread waiting for it."""
        while True:
            try:
                received = wire.recv(self._channel)
            except OSError:
                received = None
            if received is None:
                break
            event, fds = received
            for fd in fds:  # pid 1 never sends any
                os.close(fd)
            exec_id = str(event.get("exec_id"))
            ended = None
            with self._lock:
                waiter = self._waiters.get(exec_id)
                detached = self._detached.get(exec_id)
                if event.get("event") == "exit" and detached is not None:
                    detached["running"] = False
                    detached["exit_code"] = _ending(event).exit_code
                    self._waiters.pop(exec_id, None)
                    ended = self._on_end.pop(exec_id, None)
                    if event.get("not_started"):  # exec() raises: its failure is the record
                        ended = None
            if ended is not None:
                with contextlib.suppress(Exception):  # the keeper's record: never our loop
                    ended(_ending(event))
            if waiter is None:
                continue
            if event.get("event") == "started":
                waiter.started.set()
            elif event.get("event") == "exit":
                waiter.end = event
                waiter.started.set()
                waiter.done.set()
        # The sandbox is gone: every exec still waiting ends as lost.
        with self._lock:
            waiting = list(self._waiters.values())
            self._waiters.clear()
            for detached in self._detached.values():
                detached["running"] = False
        for waiter in waiting:
            waiter.end = {"lost": True}
            waiter.started.set()
            waiter.done.set()

    def alive(self) -> bool:
        return not self._stopped and self._proc.poll() is None and self._reader.is_alive()

    def detached(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._detached.values()]

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        # Pid 1 exits when its channel closes (the kernel then kills every process of
        # the pid namespace) and the launcher, which reaps it, follows. Killing the
        # launcher first would leave pid 1 to the host's init to reap, seconds later.
        with contextlib.suppress(OSError):
            self._channel.shutdown(socket.SHUT_RDWR)
        try:
            self._proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGKILL)  # pid 1 dies with it (PDEATHSIG)
            self._proc.wait()
        if self._launch.pid1 is not None:
            wait_gone(self._launch.pid1, timeout_s=5.0)
        with contextlib.suppress(OSError):
            os.close(self._launch.status_r)
        self._channel.close()
        self._remove_group()

    def _remove_group(self) -> None:
        if self._group is not None:
            self._group.remove()
            self._group = None


def _ending(event: dict[str, Any]) -> ExecEnd:
    if event.get("lost"):
        return ExecEnd(exit_code=125, detail="the session's sandbox ended during the exec")
    detail = str(event.get("detail", ""))
    if "exec_errno" in event:
        reason = os.strerror(int(event["exec_errno"]))
        detail = f"{event.get('argv0')}: {reason} (inside the sandbox)"
    elif "cwd_errno" in event:
        detail = f"cannot enter {event.get('argv0')}: {os.strerror(int(event['cwd_errno']))}"
    signum = event.get("signal")
    return ExecEnd(
        exit_code=int(event.get("exit", 125)),
        signal=signum if isinstance(signum, int) else None,
        timed_out=bool(event.get("timed_out")),
        detail=detail,
        cwd_missing="cwd_errno" in event,
    )
