"""One native run: cgroup, launcher process, egress handover, timeout, signals, result.

Owns: carrying a launch plan to the launcher (``sandbox.linux.launcher``, run as a
child with an empty environment) through a pipe, adding what only the run knows (its
cgroup, our pid, whether the command gets a pty of its own), handing the egress proxy
the listener the launcher made inside the sandbox's network namespace, the timeout and
Ctrl-C/SIGTERM/SIGHUP handling, and reading the launcher's status messages.
Does not own: the plan (``plan``), the cgroup (``backends.cgroups``), what happens inside
the sandbox (the launcher), or the exit-code rules (``backends.result``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType
from typing import Any

from orchestrator.backends import cgroups, result
from orchestrator.backends.base import EgressPort
from orchestrator.backends.pty_relay import Process, Relay, open_pty
from orchestrator.core import failpoints
from orchestrator.core.errors import SandboxSetupError
from orchestrator.core.log import debug
from orchestrator.core.spec import RunResult, SandboxSpec
from orchestrator.sandbox.linux.proctree import kill_tree, parent_of, wait_gone

from . import forking
from .plan import translate

GRACE_S = 2.0
EGRESS_HANDOVER_S = 10.0
STATUS_BUDGET = 256 * 1024  # the launcher writes a few hundred bytes


class Launch:
    """One run of the launcher: spawn it with the plan, hand the proxy its listener,
    wait (timeout, signals), then read how the run ended."""

    def __init__(
        self, spec: SandboxSpec, egress: EgressPort | None = None, *, backend: str
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.egress = egress
        self.egress_channel: socket.socket | None = None
        self.pid1: int | None = None
        self.relay: Relay | None = None
        self.messages: list[dict[str, Any]] = []
        self.timed_out = False

    def execute(self) -> RunResult:
        plan = translate(self.spec)
        hide(self.spec)
        group = cgroups.create(self.spec.run_id, self.spec.limits)
        plan["cgroup_procs"] = group.procs_files if group else []
        failpoints.reach("created")
        plan["parent_pid"] = os.getpid()
        plan["own_pty"] = self.spec.tty and not os.isatty(0)
        started = time.monotonic()
        try:
            proc = self._spawn(plan)
            failpoints.reach("started")
            self._serve_egress(proc)
            status = self._wait(proc)
        finally:
            oom = False
            if group is not None:
                with contextlib.suppress(OSError, ValueError):  # never hide the real outcome
                    oom = group.oom_killed()
                group.remove()
        return self._result(status, time.monotonic() - started, oom)

    def _serve_egress(self, proc: Process) -> None:
        """Take the listener the launcher made in the sandbox's network namespace and
        give it to the proxy, before pid 1 (and so the command) exists."""
        channel = self.egress_channel
        if channel is None or self.egress is None:
            return
        fds: list[int] = []
        error: OSError | None = None
        try:
            channel.settimeout(EGRESS_HANDOVER_S)
            _, fds, _, _ = socket.recv_fds(channel, 16, 1)
        except OSError as exc:
            error = exc
        finally:
            channel.close()
        if not fds:
            self._kill(proc)
            proc.wait()
            raise SandboxSetupError(
                f"the native launcher did not open the egress proxy's port ({error or 'closed'})",
                hint="nothing was run; `codex-box doctor` shows what this host lacks",
            )
        self.egress.serve(socket.socket(fileno=fds[0]))

    def _spawn(self, plan: dict[str, Any], extra: tuple[int, ...] = ()) -> Process:
        """``extra``: more descriptors the launcher keeps (a session's channel)."""
        self.status_r, status_w = os.pipe()
        passed = [status_w, *extra]
        child_channel = None
        if "egress_port" in plan:
            self.egress_channel, child_channel = socket.socketpair(socket.AF_UNIX)
            plan["egress_fd"] = child_channel.fileno()
            passed.append(child_channel.fileno())
        slave = None  # None: the command inherits our stdin/stdout/stderr
        if plan["own_pty"]:
            master, slave = open_pty()
            self.relay = Relay(master)
        try:
            if forking.safe():
                # Values passed with --env may be secrets: the debug log names them only.
                debug("native launch (fork)", plan={**plan, "env": sorted(plan["env"])})
                return forking.fork_launcher(plan, status_fd=status_w, keep=passed, stdio=slave)
            return self._exec_launcher(plan, passed, slave)
        except OSError as exc:
            os.close(self.status_r)
            if self.relay is not None:
                os.close(self.relay.master)
            raise SandboxSetupError(
                f"cannot start the native launcher: {exc}", hint="nothing was run"
            ) from exc
        finally:
            os.close(status_w)
            if child_channel is not None:
                child_channel.close()
            if slave is not None:
                os.close(slave)

    def _exec_launcher(self, plan: dict[str, Any], passed: list[int], slave: int | None) -> Process:
        """A second interpreter (``python -I``) when this process has other threads: a
        fork would copy whatever lock one of them holds."""
        plan_r, plan_w = os.pipe()
        argv = [
            sys.executable,
            "-I",
            "-m",
            "orchestrator.sandbox.linux.launcher",
            str(plan_r),
            str(passed[0]),
        ]
        debug("native launch", argv=argv, plan={**plan, "env": sorted(plan["env"])})
        try:
            # The launcher's own environment is empty: the command's is in the plan.
            proc = subprocess.Popen(
                argv,
                pass_fds=(plan_r, *passed),
                env={},
                close_fds=True,
                stdin=slave,
                stdout=slave,
                stderr=slave,
            )
        except OSError:
            os.close(plan_w)
            raise
        finally:
            os.close(plan_r)
        with os.fdopen(plan_w, "wb") as handle, contextlib.suppress(BrokenPipeError):
            handle.write(json.dumps(plan).encode())
        return proc

    def _wait(self, proc: Process) -> int:
        timeout = self.spec.limits.timeout_s
        deadline = None if timeout is None else time.monotonic() + timeout

        def forward(signum: int, _frame: FrameType | None) -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signum)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
        try:
            while True:
                try:
                    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                    return self._wait_for(proc, remaining)
                except subprocess.TimeoutExpired:
                    self.timed_out = True
                    deadline = None  # killed once; now wait for it to be gone
                    self._kill(proc)
                except KeyboardInterrupt:
                    self._interrupt(proc)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._read_status()
            if self.pid1 is not None:
                wait_gone(self.pid1, timeout_s=5.0)
            if self.relay is not None:
                os.close(self.relay.master)

    def _wait_for(self, proc: Process, timeout: float | None) -> int:
        if self.relay is not None:
            return self.relay.wait(proc, timeout)
        return proc.wait(timeout=timeout)

    def _interrupt(self, proc: Process) -> None:
        """Ctrl-C: the command got SIGINT from the terminal; give it a grace period."""
        for action in (None, signal.SIGTERM, signal.SIGKILL):
            if action is signal.SIGKILL:
                self._kill(proc)
                return
            if action is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, action)
            try:
                self._wait_for(proc, GRACE_S)
                return
            except subprocess.TimeoutExpired:
                continue
            except KeyboardInterrupt:
                continue

    def _kill(self, proc: Process) -> None:
        """Kill the whole run: init dies with the launcher, the kernel empties the pid ns."""
        self._read_status()
        # Pid 1 dies with the launcher anyway (PDEATHSIG); killing it first is quicker.
        # Only ever a pid that is the launcher's own child: never trust a number blindly.
        if self.pid1 is not None and parent_of(self.pid1) == proc.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid1, signal.SIGKILL)
        if not self.spec.sandboxed:
            kill_tree(proc.pid)  # the launcher is the subreaper: every orphan is below it
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)

    def _read_status(self) -> None:
        os.set_blocking(self.status_r, False)
        data = b""
        with contextlib.suppress(BlockingIOError):
            while len(data) < STATUS_BUDGET and (chunk := os.read(self.status_r, 65536)):
                data += chunk
        for line in data.decode(errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                message = json.loads(line)
                if not isinstance(message, dict):
                    continue
                self.messages.append(message)
                if self.pid1 is None and isinstance(message.get("pid1"), int):
                    self.pid1 = message["pid1"]

    def _result(self, returncode: int, duration: float, oom: bool) -> RunResult:
        os.close(self.status_r)
        seen = {key: value for message in self.messages for key, value in message.items()}
        if "setup_error" in seen:
            raise SandboxSetupError(
                f"native sandbox setup failed: {seen['setup_error']}",
                hint="nothing was run; the sandbox could not be built as the profile asks",
            )
        if self.spec.sandboxed and "sandboxed" not in seen and not self.timed_out:
            raise SandboxSetupError(
                f"native launcher ended (status {returncode}) before the sandbox was ready",
                hint="nothing was run",
            )
        signum: int | None = seen.get("signal")
        if "exit" in seen:
            code = int(seen["exit"])
        elif returncode < 0:  # killed by a signal (trusted: the launcher became the command)
            signum, code = -returncode, 128 - returncode
        else:
            code = returncode
        detail = ""
        if "exec_errno" in seen:  # the launcher already exited 127/126 for it
            detail = f"{seen['argv0']}: {os.strerror(seen['exec_errno'])} (inside the sandbox)"
        return result.finished(
            self.spec,
            backend=self.backend,
            exit_code=code,
            duration_s=duration,
            signal=signum,
            timed_out=self.timed_out,
            oom_killed=oom,
            detail=detail,
        )


def hide(spec: SandboxSpec) -> None:
    """Make each hidden directory exist before the sandbox does: one made later (the
    first session's) would be visible to a sandbox that started before it."""
    for path in spec.hidden_paths if spec.sandboxed else ():
        with contextlib.suppress(OSError):  # then the launcher finds nothing to hide
            _make_private_dirs(path)


def _make_private_dirs(path: str) -> None:
    """``makedirs`` with every missing level mode 0700, not only the last: CODEX_HOME's
    cache/ refuses a parent that group or others may write."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for level in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(level, 0o700)
