"""A container session: one container that lives, every exec through the engine API.

Owns: ``ContainerSession`` (``base.SessionSandbox`` over an engine's ``EngineOps``):
starting the session container (its ledger record, network holder, create, start,
the binds checked before any exec), keeping staged binds and the holder for the
session's life, each exec (create; start hijacked and relayed to the caller's fds;
inspect; a detached one followed by a thread until its tree ends), signals and kills
through the helper, and removing all of it on ``stop``.
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
Why the owner label names this process: the keeper is long-lived; while it runs, no
other codex-box's sweep or ``gc`` removes the container; once it is SIGKILLed, they do.
"""

from __future__ import annotations

import contextlib
import os
import signal as signals
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from orchestrator.backends import result
from orchestrator.core.errors import SandboxSetupError
from orchestrator.core.session import ExecCall, ExecEnd
from orchestrator.core.spec import SandboxSpec

from . import common as container
from .engine_api import Endpoint, EngineError
from .exec_stream import hijack, relay
from .ledger import Ledger
from .lifecycle import EngineOps, Holder, StartRefused, start_holder, sweep_if_needed
from .session_request import HELPER_TARGET, exec_body, exec_paths
from .signals import deferred_signals

FORWARDED = frozenset(
    {
        signals.SIGINT,
        signals.SIGTERM,
        signals.SIGHUP,
        signals.SIGQUIT,
        signals.SIGUSR1,
        signals.SIGUSR2,
    }
)
SETTLE_S = 5.0  # an exec's inspect may say Running a moment after its stream ended
HELPER_WAIT_S = 2.0  # a signal's own exec: how long to wait until it delivered


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
        self.held: list[str] = []
        self.paths: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stopped = False
        self._record: str | None = None
        self._ledger = Ledger(ops.url)
        self._sent: dict[str, int] = {}  # exec id → the last signal we passed on
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
                pid = self.ops.pid(self.box)
            # Only the helper's pause runs yet: checked before any command of the user.
            container.binds_unchanged(self.spec, pid)
        except BaseException:
            self.stop()
            raise

    def exec(self, call: ExecCall, stdio: tuple[int, int, int]) -> ExecEnd:
        box = self.box
        if box is None or self._stopped:
            raise SandboxSetupError("the session is stopped", hint="start a new session")
        with self.ops.errors():
            engine_id = str(
                self.api.call("POST", self.paths["create"], exec_body(call, self.spec))["Id"]
            )
            began = time.monotonic()
            start = self.paths["start"].format(id=engine_id)
            sock = hijack(self.api, start, {"Detach": False, "Tty": False})
        if call.detach:  # the helper (-d) keeps its tree, and the stream, until it ends
            with self._lock:
                self._detached[call.exec_id] = (call.argv, None)
            threading.Thread(
                target=self._follow,
                args=(call, engine_id, sock),
                name="codex-box-detached",
                daemon=True,
            ).start()
            return ExecEnd(exit_code=0)
        try:
            relay(sock, stdio)
            return self._ended(call, engine_id, time.monotonic() - began)
        finally:
            with self._lock:
                self._sent.pop(call.exec_id, None)

    def _follow(self, call: ExecCall, engine_id: str, sock: socket.socket) -> None:
        """A detached exec, until its whole tree ended: its output goes nowhere."""
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        try:
            relay(sock, (None, null, null))
        finally:
            os.close(null)
        end = self._ended(call, engine_id, 0.0)
        with self._lock:
            self._detached[call.exec_id] = (call.argv, end)

    def _ended(self, call: ExecCall, engine_id: str, elapsed: float) -> ExecEnd:
        info = self._settled(call.exec_id, engine_id)
        if info is None:
            return ExecEnd(
                exit_code=128 + signals.SIGKILL,
                signal=int(signals.SIGKILL),
                detail="the session ended while the command ran",
            )
        code = int(info["ExitCode"])
        timeout = call.timeout_s or 0.0
        # 124 from the command itself before its time is its own status, not a timeout.
        timed_out = bool(timeout) and code == result.TIMEOUT_EXIT and elapsed >= timeout * 0.99
        with self._lock:
            sent = self._sent.get(call.exec_id)
        return ExecEnd(
            exit_code=code,
            signal=result.signal_of(code, sent=sent),
            timed_out=timed_out,
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
                self._sent[exec_id] = int(signum)
            self._helper("--signal", exec_id, str(int(signum)))

    def kill(self, exec_id: str) -> None:
        with self._lock:
            self._sent[exec_id] = int(signals.SIGKILL)
        self._helper("--signal", exec_id, str(int(signals.SIGKILL)))

    def _helper(self, *argv: str) -> None:
        """Run the helper once more in the container, as the session's user; waits
        (bounded) until it is done; never raises."""
        if self.box is None or self._stopped:
            return
        body = {
            "AttachStdin": False,
            "AttachStdout": False,
            "AttachStderr": False,
            "Tty": False,
            "Cmd": [HELPER_TARGET, *argv],
            "User": f"{self.spec.uid}:{self.spec.gid}",
            "Privileged": False,
        }
        with contextlib.suppress(OSError):
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
