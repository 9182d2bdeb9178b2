"""A container session: one container that lives, every exec through the engine API.

Owns: ``ContainerSession`` (``base.SessionSandbox`` over an engine's ``EngineOps``):
starting the session container (its ledger record, network holder, create, start,
the binds checked before any exec), keeping staged binds and the holder for the
session's life, each exec (create; start hijacked and relayed to the caller's fds;
inspect; a detached one followed by a thread until its tree ends, then ``on_end``),
signals and kills through the helper, the keeper's own deadline, and removing all of
it on ``stop``.
Does not own: the requests (``session_request``, pure), the stream relay
(``exec_stream``), the helper itself (``supervise.c``), judging, auditing or building
an exec's environment (``runner.sessions``), or a run's calls (``lifecycle``).

Why every exec runs under the helper: the engine ends an exec when its main process
ends, but not what that process left (``setsid sleep 300 &``); the helper is a
subreaper that kills its whole tree then (and at the timeout: 124), so no exec leaks
processes into the next. Exec processes keep the container's seccomp,
no-new-privileges, AppArmor and dropped capabilities (the engine execs with the
container's process spec; checked by tests/integration/test_container_sessions.py).
Why signals go through a second exec of the helper, not to the host pid the engine's
exec inspect shows: that pid can be reused once the exec ended (we would signal an
unrelated host process), and a rootless engine's pids are not ours to signal. Inside
the container, as the session's user, the helper reaches only the session's processes.
Why a deadline here too (``OVERDUE_S`` past the helper's), kills that end the helper
itself, and a relay cut after a kill: the command runs as its helper's user and can
SIGSTOP it; the helper's own timer then never fires, and its exec never ends.
Why the owner label names this process: the keeper is long-lived; while it runs, no
other codex-box's sweep or ``gc`` removes the container; once it is SIGKILLed, they do.
"""

from __future__ import annotations

import contextlib
import os
import signal as signals
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.backends import cgroups, result
from orchestrator.core.errors import SandboxSetupError
from orchestrator.core.log import debug
from orchestrator.core.session import ExecCall, ExecEnd
from orchestrator.core.spec import SandboxSpec

from . import common as container
from .engine_api import Endpoint, EngineError
from .exec_stream import Running, hijack, relay
from .ledger import Ledger
from .lifecycle import EngineOps, Holder, StartRefused, start_holder, sweep_if_needed
from .session_request import EXIT_NO_CWD, FORWARDED, exec_body, exec_paths, helper_body
from .signals import deferred_signals

SETTLE_S = 5.0  # an exec's inspect may say Running a moment after its stream ended
HELPER_WAIT_S = 2.0  # a signal's own exec: how long to wait until it delivered
OVERDUE_S = 3.0  # past its timeout, an exec its helper did not end is killed from here
CUT_S = 5.0  # after a kill, the relay ends by then even if the engine's stream does not


class ContainerSession:
    """One session container (``base.SessionSandbox``); every method is thread-safe."""

    def __init__(
        self,
        spec: SandboxSpec,
        ops: EngineOps,
        *,
        backend: str,
        api: Endpoint,
        prefix: str,
        holder: Holder | None = None,
        cleanup: contextlib.ExitStack | None = None,
    ) -> None:
        """``cleanup``: what must live as long as the container (staged binds)."""
        self.backend = backend
        self.spec = spec
        self.ops = ops
        self.api = api
        self.prefix = prefix
        self.holder = holder
        self.cleanup = cleanup or contextlib.ExitStack()
        self.box: str | None = None
        self.root_pid: int | None = None  # the helper's pause, on the host
        self.held: list[str] = []
        self.paths: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stopped = False
        self._record: str | None = None
        self._ledger = Ledger(ops.url)
        self._running: dict[str, Running] = {}  # exec id → while it runs
        self._detached: dict[str, tuple[tuple[str, ...], ExecEnd | None]] = {}  # → argv, end

    @property
    def created(self) -> bool:
        return self.box is not None or bool(self.held)

    def start(self, request: Mapping[str, Any]) -> None:
        """Create and start the container; on any failure remove what was made."""
        sweep_if_needed(self.ops, self._ledger)
        self._record = self._ledger.record(self.spec.run_id)  # before anything exists
        try:
            if self.holder is not None:
                pid = start_holder(self.ops, self.holder, self.held, image=self.spec.image)
                if self.holder.join is not None:
                    request = self.holder.join(request, pid)
            container.ensure_empty_dir(self.spec)  # the deny_read masks' source
            with deferred_signals(), self.ops.errors():
                self.box = self.ops.create(request)
            self.paths = exec_paths(self.prefix, self.box)
            with self.ops.errors():
                try:
                    self.ops.start(self.box)
                except StartRefused as exc:
                    raise SandboxSetupError(
                        f"{self.ops.engine} could not start the session container: {exc.message}",
                        hint="nothing was run; is the helper readable by the engine?",
                    ) from exc
                pid = self.root_pid = self.ops.pid(self.box)
            # Only the helper's pause runs yet: checked before any command of the user.
            container.binds_unchanged(self.spec, pid)
        except BaseException:
            self.stop()
            raise

    def exec(
        self,
        call: ExecCall,
        stdio: tuple[int, int, int],
        *,
        on_end: Callable[[ExecEnd], None] | None = None,
    ) -> ExecEnd:
        box = self.box
        if box is None or self._stopped:
            raise SandboxSetupError("the session is stopped", hint="start a new session")
        oom_before = self._oom_kills()
        with self.ops.errors():
            engine_id = str(
                self.api.call("POST", self.paths["create"], exec_body(call, self.spec))["Id"]
            )
            began = time.monotonic()
            start = self.paths["start"].format(id=engine_id)
            sock = hijack(self.api, start, {"Detach": False, "Tty": False})
        running = Running(sock)
        with self._lock:
            self._running[call.exec_id] = running
        if call.timeout_s:  # the helper's own deadline dies with it (SIGSTOP): ours too
            running.later(call.timeout_s + OVERDUE_S, self._overdue, call.exec_id, running)
        if call.detach:  # the helper (-d) keeps its tree, and the stream, until it ends
            with self._lock:
                self._detached[call.exec_id] = (call.argv, None)
            threading.Thread(
                target=self._follow,
                args=(call, engine_id, running, began, oom_before, on_end),
                name="codex-box-detached",
                daemon=True,
            ).start()
            return ExecEnd(exit_code=0)
        try:
            relay(sock, stdio)
            return self._ended(call, engine_id, running, began, oom_before)
        finally:
            self._forget(call.exec_id, running)

    def _follow(
        self,
        call: ExecCall,
        engine_id: str,
        running: Running,
        began: float,
        oom_before: int,
        on_end: Callable[[ExecEnd], None] | None,
    ) -> None:
        """A detached exec, until its whole tree ended: its output goes nowhere; then
        ``on_end`` (the keeper's ended record), unless the session's stop ended it."""
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        try:
            relay(running.sock, (None, null, null))
        finally:
            os.close(null)
        try:
            end = self._ended(call, engine_id, running, began, oom_before)
        finally:
            self._forget(call.exec_id, running)
        with self._lock:
            self._detached[call.exec_id] = (call.argv, end)
            stopped = self._stopped
        if on_end is not None and not stopped:
            try:
                on_end(end)
            except Exception as exc:  # a thread of ours: nobody else would see it
                debug("a detached exec's on_end failed", exec_id=call.exec_id, error=repr(exc))

    def _overdue(self, exec_id: str, running: Running) -> None:
        """The exec outlived its timeout by ``OVERDUE_S``: its helper did not end it."""
        with self._lock:
            if self._running.get(exec_id) is not running:
                return  # it ended meanwhile
            running.overdue = True
        self.kill(exec_id)

    def _forget(self, exec_id: str, running: Running) -> None:
        with self._lock:
            if self._running.get(exec_id) is running:
                del self._running[exec_id]
            running.cancel()

    def _oom_kills(self) -> int:
        """The container's OOM-kill count (its memory cgroup, which every exec shares);
        the engines report OOM only for a container's own process, not an exec's."""
        counted = None if self.root_pid is None else cgroups.oom_kills_of(self.root_pid)
        return counted or 0

    def _ended(
        self, call: ExecCall, engine_id: str, running: Running, began: float, oom_before: int
    ) -> ExecEnd:
        elapsed = time.monotonic() - began
        info = self._settled(call.exec_id, engine_id)
        timeout = call.timeout_s or 0.0
        if running.overdue:  # killed by our deadline: a timeout, whatever its status says
            return ExecEnd(
                exit_code=result.TIMEOUT_EXIT,
                timed_out=True,
                detail=f"timed out after {timeout:g}s; its supervisor did not end it: killed",
            )
        if info is None:
            return ExecEnd(
                exit_code=128 + signals.SIGKILL,
                signal=int(signals.SIGKILL),
                detail="the session ended while the command ran",
            )
        code = int(info["ExitCode"])
        # 124 from the command itself before its time is its own status, not a timeout.
        timed_out = bool(timeout) and code == result.TIMEOUT_EXIT and elapsed >= timeout * 0.99
        killed = code == 128 + signals.SIGKILL
        return ExecEnd(
            exit_code=code,
            signal=result.signal_of(code, sent=running.sent),
            timed_out=timed_out,
            oom_killed=killed and not timed_out and self._oom_kills() > oom_before,
            # The helper's status when it could not enter the directory (it said so on
            # stderr); a command's own 125 is read the same way: the directory stays.
            cwd_missing=code == EXIT_NO_CWD,
            detail=f"timed out after {timeout:g}s; killed" if timed_out else "",
        )

    def _settled(self, exec_id: str, engine_id: str) -> dict[str, Any] | None:
        """The exec's inspect once it no longer runs; None when it is gone with the
        container (stopped, or the session's root was killed). One whose output ended
        but that still runs after ``SETTLE_S`` is killed (bounded: twice that)."""
        path = self.paths["inspect"].format(id=engine_id)
        deadline = time.monotonic() + SETTLE_S
        for attempt in range(2):
            while time.monotonic() < deadline:
                try:
                    info: dict[str, Any] = self.api.call("GET", path)
                except EngineError:
                    return None
                if not info.get("Running") and info.get("ExitCode") is not None:
                    return info
                time.sleep(0.01)
            if attempt == 0:
                self.kill(exec_id)
                deadline = time.monotonic() + SETTLE_S
        return None

    def signal(self, exec_id: str, signum: int) -> None:
        if signum == signals.SIGKILL:
            self.kill(exec_id)
        elif signum in FORWARDED:
            with self._lock:
                if (running := self._running.get(exec_id)) is not None:
                    running.sent = int(signum)
            self._helper("--signal", exec_id, str(int(signum)))

    def kill(self, exec_id: str) -> None:
        """The exec's tree and its helper (SIGKILL ends even a stopped one); its relay
        is cut ``CUT_S`` later if the engine has not ended the stream by then."""
        with self._lock:
            if (running := self._running.get(exec_id)) is not None:
                running.sent = int(signals.SIGKILL)
                running.later(CUT_S, running.cut)
        self._helper("--signal", exec_id, str(int(signals.SIGKILL)))

    def _helper(self, *argv: str) -> None:
        """Run the helper once more in the container, as the session's user; waits
        (bounded) until it is done; never raises."""
        if self.box is None or self._stopped:
            return
        with contextlib.suppress(OSError):
            body = helper_body(self.spec, argv)
            engine_id = str(self.api.call("POST", self.paths["create"], body)["Id"])
            self.api.call(
                "POST", self.paths["start"].format(id=engine_id), {"Detach": True, "Tty": False}
            )
            deadline = time.monotonic() + HELPER_WAIT_S
            while time.monotonic() < deadline:
                if not self.api.call("GET", self.paths["inspect"].format(id=engine_id)).get(
                    "Running"
                ):
                    return
                time.sleep(0.01)

    def alive(self) -> bool:
        if self.box is None or self._stopped:
            return False
        try:
            return bool(self.api.call("GET", self.paths["container"])["State"]["Running"])
        except EngineError:
            return False  # gone
        except OSError:
            return True  # the engine did not answer: that says nothing of the container

    def detached(self) -> list[dict[str, Any]]:
        with self._lock:
            known = dict(self._detached)
        return [
            {
                "exec_id": exec_id,
                "argv": list(argv),
                "running": end is None,
                "exit_code": None if end is None else end.exit_code,
            }
            for exec_id, (argv, end) in known.items()
        ]

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        removed = True
        for one in ([self.box] if self.box is not None else []) + self.held:
            with deferred_signals():
                removed = self.ops.remove(one) and removed
        with contextlib.suppress(Exception):
            self.cleanup.close()  # staged binds: only once nothing uses them
        if removed:  # else the record stays: a later run or gc sweeps
            self._ledger.done(self._record)
