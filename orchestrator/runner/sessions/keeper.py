"""A session's keeper: the one host-side process a session is. It builds the sandbox
once, serves the control socket, judges, audits and passes on each exec, and ends the
session — when asked, when idle or too old, when its sandbox dies, or on SIGTERM.

Started as ``python -I -m orchestrator.runner.sessions.keeper`` in a session of its
own (``start``): the start request arrives on stdin, one ``ready`` (or ``error``) line
goes back on stdout, then both are /dev/null. There is no daemon: each session's
idle timeout and lifetime are kept by its own keeper.

Owns: the session's lifecycle (build, idle timeout, lifetime, a dead sandbox, stop)
and its records (``session_start``, ``session_stop``, a detached exec's end), what
every exec shares (the audit writer, the launch facts, the working directory). Does
not own: the control socket and who may use it (``control``), one exec (``execs``),
the sandbox (the backend's ``SessionSandbox``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from orchestrator.audit import records
from orchestrator.backends.base import SessionSandbox
from orchestrator.compile import placeholders
from orchestrator.core.errors import CodexBoxError
from orchestrator.core.profile import PlantedRepo
from orchestrator.core.session import ExecEnd, check_name
from orchestrator.core.spec import SandboxSpec
from orchestrator.policy import gate
from orchestrator.runner.context import HostContext, new_id
from orchestrator.runner.pipeline import Runner, RunRequest
from orchestrator.runner.postrun import PostRunCheck, report
from orchestrator.runner.selection import choose
from orchestrator.sandbox.linux.proctree import start_time

from . import control, store
from .request import StartRequest

if TYPE_CHECKING:  # the proxy (asyncio, TLS) loads only for a session that filters egress
    from orchestrator.netproxy.session import ProxySession


class Keeper:
    def __init__(self, request: StartRequest) -> None:
        if request.name is not None:
            check_name(request.name)
        self.request = request
        self.session_id = new_id()
        base = HostContext.from_environ(request.environ, cwd=request.cwd)
        self.context = replace(base, session_id=self.session_id)
        self.options = replace(request.options, tty=False)
        self.runner = Runner(
            self.context,
            RunRequest(
                argv=(),
                profile=request.profile,
                workspace=request.workspace,
                backend=request.backend,
                options=self.options,
                trust_opt_in=request.trust_opt_in,
                policy_mode=request.policy_mode,
            ),
        )
        self.audit = self.runner.audit
        self.policy_mode = gate.policy_mode(request.policy_mode, self.context.config.policy_mode)
        self._lock = threading.Lock()
        self._running = 0
        self._execs = 0
        self._last_active = time.monotonic()
        self.stop_reason: str | None = None
        self.stopping = threading.Event()
        # Detached execs still running: what writes each one's `ended` record.
        self._detached: dict[str, Callable[[ExecEnd], object]] = {}
        self._reported: set[str] = set()  # planted-repository findings execs reported
        self._cited: dict[str, list[int]] = {}  # exec run id → its records' seqs
        self._egress: ProxySession | None = None  # the session's egress proxy, if any
        # stop() writes here: serve()'s poll wakes at once (any thread, or a signal).
        self.wake_fd, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    # --- what execs share ------------------------------------------------------

    def write(self, run_id: str, *batch: dict[str, Any]) -> None:
        ids = {"session_id": self.session_id, "run_id": run_id}
        out: list[dict[str, Any]] = []
        for record in batch:
            head: dict[str, Any] = {k: record[k] for k in ("operation", "target") if k in record}
            out.append({**head, **ids, **record})
        seqs = self.audit.append_many(out)
        if run_id != self.runner.run_id:  # an exec's: its result cites them (``cited``)
            with self._lock:
                self._cited.setdefault(run_id, []).extend(seqs)

    def cited(self, run_id: str) -> list[int]:
        """The seqs of the records exec ``run_id`` wrote so far (forgotten once asked)."""
        with self._lock:
            return self._cited.pop(run_id, [])

    def launch_facts(self, policy: records.PolicyFacts | None) -> records.Launch:
        return records.Launch(
            profile=self.spec.profile,
            profile_source=self.resolution.source.value,
            backend=self.backend.name,
            workspace=self.spec.workspace,
            policy=policy,
        )

    def exec_started(self) -> None:
        with self._lock:
            self._running += 1
            self._execs += 1
            self._last_active = time.monotonic()

    def exec_ended(self) -> None:
        with self._lock:
            self._running -= 1
            self._last_active = time.monotonic()

    def detached_started(self, run_id: str, finish: Callable[[ExecEnd], object]) -> None:
        with self._lock:
            self._detached.setdefault(run_id, finish)

    def detached_forget(self, run_id: str) -> None:
        """It never started: no ended record (its setup failure is on record)."""
        with self._lock:
            self._detached.pop(run_id, None)

    def detached_ended(
        self, run_id: str, finish: Callable[[ExecEnd], object], end: ExecEnd
    ) -> None:
        """A detached exec's end (from the sandbox's thread): its `ended` record."""
        with self._lock:
            self._detached.pop(run_id, None)
        finish(end)
        self.cited(run_id)  # its answer went out at the start: nobody asks for these

    # --- the session -----------------------------------------------------------

    def start(self) -> contextlib.ExitStack:
        """Build the sandbox; the returned stack ends everything it holds."""
        request = self.request
        try:
            self.resolution, spec = self.runner.compile(preview=True)
            selection = choose(self.context, request.backend, spec, probe=True)
        except CodexBoxError as exc:
            resolution = self.runner.resolution
            with contextlib.suppress(CodexBoxError):
                self.write(
                    self.runner.run_id,
                    records.session_refused(
                        name=request.name,
                        error=exc.one_line(),
                        profile=resolution.profile.name if resolution else None,
                    ),
                )
            raise
        self.spec, self.backend, self.cwd = spec, selection.backend, spec.workspace
        self.created = datetime.now(UTC)
        self.expires = self.created + timedelta(seconds=request.max_lifetime_s)
        self._deadline = time.monotonic() + request.max_lifetime_s
        launch = self.launch_facts(None)
        self.write(
            self.runner.run_id,
            records.profile_resolved(
                launch=launch,
                chosen_by=self.resolution.describe(),
                chain=self.resolution.chain_text(),
            ),
            records.backend_selected(launch=launch, why=selection.why, skipped=selection.skipped),
        )
        # Before the placeholders, as a run's: what the whole session planted (detached
        # execs' included) is looked for at its stop.
        self._session_check = self.planted_check(spec, self.session_id)
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(
                placeholders.held(
                    spec.workspace,
                    spec.protected_paths,
                    state_dir=self.context.home / "run",
                    identity=spec.identity_of(spec.workspace),
                )
            )
            egress = None
            if spec.egress is not None:
                from orchestrator.netproxy.session import ProxySession  # only when filtering

                from ..credentials import secret_values

                def refused(refusal: Any) -> None:
                    self.write(
                        self.runner.run_id, records.egress_refused(launch=launch, refusal=refusal)
                    )

                # Read once, at the session's start: every exec's requests use them.
                values = secret_values(spec, self.context)
                egress = stack.enter_context(
                    ProxySession(
                        spec.egress, run_id=spec.run_id, audit=refused, secret_values=values
                    )
                )
                self._egress = egress
            self.sandbox: SessionSandbox = self.backend.start_session(
                spec, selection.facts, egress=egress
            )
            stack.callback(self.sandbox.stop)
        except CodexBoxError as exc:
            stack.close()
            self._session_check.close()
            with contextlib.suppress(CodexBoxError):
                self.write(
                    self.runner.run_id,
                    records.sandbox_setup_failed(argv=(), launch=launch, error=exc.one_line()),
                )
            raise
        try:
            with contextlib.suppress(CodexBoxError):  # the first exec then pays no policy load
                gate.evaluate(
                    replace(spec, argv=("true",)),
                    home=self.context.user_home,
                    codex_home=self.context.home,
                )
            self.write(
                self.runner.run_id,
                records.session_started(launch=launch, name=request.name, expires=self.expires),
            )
        except BaseException:  # not on record (the audit log failed): nothing may stay
            stack.close()
            self._session_check.close()
            raise
        return stack

    def _wait_for_execs(self, timeout_s: float = 5.0) -> None:
        """The sandbox is gone, so every exec is ending: let their handlers write the
        ended records and answer their clients before session_stop and our exit."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._running <= 0:
                    return
            time.sleep(0.01)

    def planted_reported(self, texts: Iterable[str]) -> None:
        """Findings an exec reported: the session's own check at its stop skips them."""
        with self._lock:
            self._reported.update(texts)

    def planted_check(self, spec: SandboxSpec, quarantine_id: str) -> PostRunCheck:
        """The planted-repository check of one exec (or of the whole session), snapshot
        taken now; quarantined under ``quarantine_id`` when the profile says so."""
        quarantine = self.resolution.profile.on_planted_repo is PlantedRepo.QUARANTINE
        return PostRunCheck(spec, quarantine_id=quarantine_id if quarantine else None)

    def state(self) -> store.SessionState:
        return store.SessionState(
            id=self.session_id,
            name=self.request.name,
            profile=self.spec.profile,
            backend=self.backend.name,
            workspace=self.spec.workspace,
            created=self.created.isoformat(timespec="seconds"),
            expires=self.expires.isoformat(timespec="seconds"),
            idle_timeout_s=self.request.idle_timeout_s,
            max_lifetime_s=self.request.max_lifetime_s,
            keeper_pid=os.getpid(),
            keeper_start=start_time(os.getpid()) or "",
            uid=os.getuid(),
            image=self.spec.image if self.backend.name != "native" else None,
        )

    def stop(self, why: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = why
        self.stopping.set()
        with contextlib.suppress(OSError):  # full: a wake-up is already pending
            os.write(self._wake_w, b"x")

    def check_clock(self) -> None:
        now = time.monotonic()
        with self._lock:
            idle = self._running == 0 and not any(d["running"] for d in self.sandbox.detached())
            idle_for = now - self._last_active if idle else 0.0
            if not idle:
                self._last_active = now
        if now >= self._deadline:
            self.stop(f"its max lifetime ({self.request.max_lifetime_s:g}s) passed")
        elif idle_for >= self.request.idle_timeout_s:
            self.stop(f"idle for {self.request.idle_timeout_s:g}s")
        elif not self.sandbox.alive():
            self.stop("its sandbox died")

    def info(self) -> dict[str, Any]:
        with self._lock:
            running, count = self._running, self._execs
        return {
            "event": "info",
            "session": self.state().public(),
            "cwd": self.cwd,
            "running": running,
            "execs": count,
            "detached": self.sandbox.detached(),
        }

    def finish(self, stack: contextlib.ExitStack, why: str) -> None:
        """End the sandbox and everything held for it, then the record and the state."""
        started = time.monotonic()
        post_run = self._session_check
        try:
            stack.close()
            self._wait_for_execs()
        finally:
            findings, problems = post_run.finish()
            findings = [f for f in findings if f.text() not in self._reported]
            launch = self.launch_facts(None)
            with self._lock:
                still = list(self._detached.values())
                self._detached.clear()
            for finish in still:  # their trees ended with the sandbox
                finish(ExecEnd(exit_code=128 + 9, signal=9, detail="the session stopped"))
            with contextlib.suppress(CodexBoxError):
                report(
                    findings,
                    problems,
                    write=lambda *b: self.write(self.runner.run_id, *b),
                    launch=launch,
                )
                self.write(
                    self.runner.run_id,
                    records.session_stopped(
                        launch=launch,
                        name=self.request.name,
                        why=why,
                        execs=self._execs,
                        credentials=self._egress.credential_uses() if self._egress else [],
                        duration_s=time.monotonic()
                        - started
                        + (datetime.now(UTC) - self.created).total_seconds(),
                    ),
                )
            store.remove(self.context.home, self.session_id)


def main() -> None:
    """The keeper process: request on stdin, one answer line on stdout, then serve."""
    data = json.loads(sys.stdin.buffer.read())
    answer = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    try:
        keeper = Keeper(StartRequest.from_json(data))
        stack = keeper.start()
        try:
            listener = control.listen(keeper)
        except BaseException as exc:  # e.g. its name was taken: its start has a stop
            why = exc.one_line() if isinstance(exc, CodexBoxError) else repr(exc)
            keeper.finish(stack, f"it could not start serving: {why}")
            raise
    except CodexBoxError as exc:
        answer.write(
            json.dumps({"error": exc.message, "hint": exc.hint, "exit_code": exc.exit_code})
        )
        answer.close()
        raise SystemExit(exc.exit_code) from None
    answer.write(json.dumps({"session": keeper.state().public()}))
    answer.close()
    os.dup2(devnull, 2)  # nobody reads our stderr any more
    why = "stopped"
    try:
        why = control.serve(keeper, listener)
    finally:
        listener.close()
        keeper.finish(stack, why)
    os._exit(0)


if __name__ == "__main__":
    main()
