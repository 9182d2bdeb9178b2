"""One container run, the same on every engine: create → attach → start → wait → remove.

Owns: the order of the calls (attach before start, so no output is lost; the wait
registered before start where the engine can, so no exit is missed and none waited
for late), the timeout (kill, then 124), Ctrl-C and SIGTERM/SIGHUP forwarding, removal
on every way out, sweeping leftovers of killed runs when the ledger says there can be
some, OOM and signal reporting, and mapping a start failure that is the command's
fault to 126/127 like a shell.
Does not own: how an engine is called or how its errors read (``EngineOps``
implementations in ``docker`` and ``podman.ops``), the record of runs in flight
(``ledger``), or the exit-code rules every backend shares (``backends.result``).

The engine round trips of a run (Docker: create, attach, wait, start, inspect, remove;
Podman: create, init, inspect, attach, start, wait, inspect, remove) are pinned by
tests/integration/test_container_roundtrips.py.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any, Protocol

from orchestrator.backends import result
from orchestrator.backends.base import EgressPort
from orchestrator.core import failpoints
from orchestrator.core.errors import CodexBoxError, SandboxSetupError
from orchestrator.core.spec import RunResult, SandboxSpec

from . import common as container
from . import netns
from .attach import AttachedStreams, copy_window_size, raw_terminal
from .ledger import Ledger
from .signals import STOP_SIGNALS, Stopped, deferred_signals, raise_stopped

GRACE_S = 2.0  # per signal, when Ctrl-C escalates SIGINT → SIGTERM → SIGKILL
WAIT_SLICE_S = 60.0  # a wait without deadline is re-issued so no HTTP call hangs forever


class StartRefused(Exception):
    """The engine created the container but could not start the command."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EngineOps(Protocol):
    """The handful of engine calls a run makes. Each raises ``CodexBoxError`` (already
    translated), ``TimeoutError`` from ``wait``, or ``StartRefused`` from ``start`` (or
    from ``wait`` when the engine's init could not exec the command)."""

    engine: str  # "Docker", "Podman": for messages
    url: str  # the engine's endpoint (the ledger's key)
    left: list[str]  # leftovers ``sweep`` could not remove (it goes on with the others)

    def errors(self) -> contextlib.AbstractContextManager[None]: ...
    def sweep(self) -> list[str]: ...  # remove containers whose codex-box was SIGKILLed
    def create(self, request: Mapping[str, Any], *, name: str | None = None) -> str: ...
    def pid(self, box: str) -> int: ...  # the host pid of a running container's init
    # Set the container up (namespaces, mounts) without running the command, and
    # return its init's host pid; None where the engine cannot (Docker).
    def initialize(self, box: str) -> int | None: ...
    def attach(self, box: str) -> socket.socket: ...
    # Have the engine hold a wait for the command's exit before it starts (the next
    # ``wait`` reads its answer); nothing where the engine cannot promise that.
    def expect_exit(self, box: str) -> None: ...
    def start(self, box: str) -> None: ...
    def wait(self, box: str, timeout: float) -> int: ...
    def kill(self, box: str, sig: int) -> None: ...  # never raises
    def oom_killed(self, box: str) -> bool: ...
    def remove(self, box: str) -> bool: ...  # never raises; False: it may still be there
    def resize(self, box: str, rows: int, cols: int) -> None: ...  # never raises


@dataclass(frozen=True, slots=True, kw_only=True)
class Holder:
    """The network holder of a filtered-egress run (``container.netns_holder_spec``)."""

    request: Mapping[str, Any]
    name: str
    port: int
    egress: EgressPort
    # The command's create request, made to join the holder (pid known once started):
    # for an engine that cannot name the holder in its request (podman-py).
    join: Callable[[Mapping[str, Any], int], Mapping[str, Any]] | None = None


def egress_holder(
    spec: SandboxSpec,
    egress: EgressPort | None,
    *,
    translate: Callable[[SandboxSpec], dict[str, Any]],
    labels_key: str,
    owner: Mapping[str, str],
    join: Callable[[Mapping[str, Any], int], Mapping[str, Any]] | None = None,
) -> Holder | None:
    """The network holder of ``spec`` (None without filtered egress), translated by the
    engine's own pure ``translate`` so it gets the run's image and hardening."""
    if spec.egress is None:
        return None
    if egress is None:  # fail closed: no proxy, no run
        raise SandboxSetupError(
            "this profile's network goes through the egress proxy, but none was given",
            hint="run through codex-box (Runner), which starts the proxy",
        )
    body = translate(container.netns_holder_spec(spec))
    body[labels_key] = {**body[labels_key], **owner, container.LABEL_ROLE: "netns"}
    return Holder(
        request=body,
        name=container.netns_holder_name(spec),
        port=spec.egress.port,
        egress=egress,
        join=join,
    )


def sweep_if_needed(ops: EngineOps, ledger: Ledger) -> None:
    """Remove what killed runs (and sessions) left, when the ledger says there can be
    some: not a list call to the engine on every run."""
    if not ledger.must_sweep():
        return
    listed = time.time()
    with ops.errors():
        ops.sweep()
    if not ops.left:  # else the dead records stay: later runs try again
        ledger.swept(listed)


def start_holder(ops: EngineOps, holder: Holder, held: list[str], *, image: str) -> int:
    """Create and start the network holder, then hand the proxy a listener made in its
    namespace — all before the command's container exists, so the command never runs
    a moment without its only way out in place. Its id goes into ``held`` at once."""
    with deferred_signals(), ops.errors():
        held.append(ops.create(holder.request, name=holder.name))
    with ops.errors():
        try:
            ops.start(held[0])
        except StartRefused as exc:
            raise SandboxSetupError(
                f"cannot start the network holder container ({exc.message})",
                hint=f"the image {image} needs `sleep`; nothing was run",
            ) from exc
        pid = ops.pid(held[0])
    holder.egress.serve(netns.listen_in(pid, holder.port))
    return pid


class ContainerRun:
    def __init__(
        self,
        spec: SandboxSpec,
        ops: EngineOps,
        *,
        backend: str,
        holder: Holder | None = None,
        binds_staged: bool = False,
    ) -> None:
        """``binds_staged``: every checked path reaches the engine as a bind staged from
        its pinned descriptor (``staging``), so there is nothing left to check after
        start."""
        self.spec = spec
        self.binds_staged = binds_staged
        self.ops = ops
        self.backend = backend
        self.holder = holder
        self.sent: int | None = None  # the last signal we forwarded
        self.timed_out = False
        self.created = False  # a container of this run exists (or did): it may have run

    def execute(self, request: Mapping[str, Any]) -> RunResult:
        started = time.monotonic()
        # Until the wait forwards them to the container, SIGTERM/SIGHUP end the run
        # through the `finally` below (their default action would kill codex-box and
        # leave the container running).
        previous = {s: signal.signal(s, raise_stopped) for s in STOP_SIGNALS}
        try:
            ledger = Ledger(self.ops.url)
            self._sweep(ledger)
            record = ledger.record(self.spec.run_id)  # before anything exists to leave
            box: str | None = None
            held: list[str] = []
            removed = True
            try:
                if self.holder is not None:
                    pid = self._start_holder(self.holder, held)
                    if self.holder.join is not None:
                        request = self.holder.join(request, pid)
                # While a container is being created or removed, no signal may interrupt:
                # one created on the engine whose id we never got could not be removed.
                # A signal held here is delivered on leaving the block, with `box` set.
                container.ensure_empty_dir(self.spec)  # the deny_read masks' source
                with deferred_signals(), self.ops.errors():
                    box = self.ops.create(request)
                    self.created = True
                failpoints.reach("created")
                with self.ops.errors():
                    code = self._attach_start_wait(box)
                    oom = self.ops.oom_killed(box)
            finally:
                for one in ([box] if box is not None else []) + held:
                    with deferred_signals():  # on every way out: error, Ctrl-C, timeout
                        removed = self.ops.remove(one) and removed
                if removed:  # else the record stays: the next run sweeps after we exit
                    ledger.done(record)
        except Stopped as stop:
            return self._stopped(stop.signum, time.monotonic() - started)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self._result(code, oom, time.monotonic() - started)

    def _sweep(self, ledger: Ledger) -> None:
        sweep_if_needed(self.ops, ledger)

    def _start_holder(self, holder: Holder, held: list[str]) -> int:
        try:
            return start_holder(self.ops, holder, held, image=self.spec.image)
        finally:
            self.created = self.created or bool(held)  # the holder was created

    def _stopped(self, signum: int, duration: float) -> RunResult:
        name = signal.Signals(signum).name
        return RunResult(
            exit_code=128 + signum,
            backend=self.backend,
            duration_s=duration,
            signal=signum,
            detail=f"codex-box got {name} before the command ended; the container was removed",
        )

    def _attach_start_wait(self, box: str) -> int:
        # Where the engine can make the container without starting the command, its
        # binds are checked before anything runs; else, unless they were staged, right
        # after start (Docker without root), killing it at once on a mismatch (README:
        # Honest limits).
        pid = self._initialize(box)
        if pid is not None:
            container.binds_unchanged(self.spec, pid)
        streams = AttachedStreams(self.ops.attach(box), tty=self.spec.tty)
        with raw_terminal(enabled=self.spec.tty):
            streams.start()
            try:
                self.ops.expect_exit(box)
                self.ops.start(box)
                failpoints.reach("started")
                if pid is None and not self.binds_staged:
                    self._check_started(box)
                if self.spec.tty:
                    copy_window_size(lambda rows, cols: self.ops.resize(box, rows, cols))
                code = self._wait(box)
            except StartRefused as exc:  # from start, or from an init that could not exec
                streams.finish(timeout=1)
                raise _not_startable(exc.message, self.spec, self.ops.engine) from exc
            streams.finish()
        return code

    def _initialize(self, box: str) -> int | None:
        try:
            return self.ops.initialize(box)
        except StartRefused as exc:
            raise _not_startable(exc.message, self.spec, self.ops.engine) from exc

    def _check_started(self, box: str) -> None:
        try:
            pid = self.ops.pid(box)
        except CodexBoxError:
            pid = 0
        if pid <= 0:
            return  # already ended: nothing is left to look into (README: Honest limits)
        try:
            container.binds_unchanged(self.spec, pid, ended_ok=True)
        except SandboxSetupError:
            self.ops.kill(box, signal.SIGKILL)
            raise

    def _wait(self, box: str) -> int:
        limit = self.spec.limits.timeout_s
        deadline = None if limit is None else time.monotonic() + limit

        def forward(signum: int, _frame: FrameType | None) -> None:
            self.sent = signum
            self.ops.kill(box, signum)

        previous = {s: signal.signal(s, forward) for s in STOP_SIGNALS}
        try:
            while True:
                remaining = WAIT_SLICE_S if deadline is None else deadline - time.monotonic()
                try:
                    return self.ops.wait(box, max(0.1, min(remaining, WAIT_SLICE_S)))
                except TimeoutError:
                    if deadline is not None and time.monotonic() >= deadline:
                        self.timed_out = True
                        self.ops.kill(box, signal.SIGKILL)
                except KeyboardInterrupt:
                    self._interrupt(box)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _interrupt(self, box: str) -> None:
        """Ctrl-C: the command does not share our terminal; pass SIGINT on, then insist."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            self.sent = sig
            self.ops.kill(box, sig)
            with contextlib.suppress(TimeoutError, KeyboardInterrupt):
                self.ops.wait(box, GRACE_S)
                return

    def _result(self, code: int, oom: bool, duration: float) -> RunResult:
        if self.timed_out:
            code = result.TIMEOUT_EXIT  # not a signal we sent, whatever the engine said
        return result.finished(
            self.spec,
            backend=self.backend,
            exit_code=code,
            duration_s=duration,
            signal=signal.SIGKILL if oom else result.signal_of(code, sent=self.sent),
            timed_out=self.timed_out,
            oom_killed=oom,
        )


def _not_startable(message: str, spec: SandboxSpec, engine: str) -> CodexBoxError:
    """A start failure that is the command's fault (not found, not executable) maps to
    126/127 like a shell; anything else is a setup failure."""
    text = message.lower()
    for needle, code, what in (
        ("not found", 127, "command not found"),
        ("no such file", 127, "command not found"),
        ("permission denied", 126, "command not executable"),
    ):
        if needle in text:
            error = CodexBoxError(
                f"{what} inside the container: {spec.argv[0]}",
                hint=f"is it installed in {spec.image}?",
            )
            error.exit_code = code
            return error
    return SandboxSetupError(
        f"{engine} could not start the container: {message}", hint="nothing was run"
    )
