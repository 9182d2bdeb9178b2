"""What one ``codex-box serve`` holds: the fork server, the warm pools, the sessions it
started, the runs in flight, the concurrency gate and the metrics.

Owns: starting and stopping all of it (stopping: every run and exec cancelled, every
pool emptied, every session it started stopped, the record of what it made emptied),
and beginning one run or exec — from a pool when one fits, else cold — as an
``Execution`` with its pipes. Every decision stays the runner's (``forked_run`` runs
``pipeline.Runner`` as the CLI does; a session's keeper judges its execs).
Does not own: HTTP (``routes``), streaming (``execution``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from loguru import logger

from orchestrator.core.errors import CodexBoxError, ConfigError, Refused
from orchestrator.core.options import LaunchOptions
from orchestrator.runner import owned, tidy
from orchestrator.runner.context import HostContext
from orchestrator.runner.forkserver import ForkServer, RunChannel
from orchestrator.runner.pools import Pool, Pooled
from orchestrator.runner.sessions import client, store
from orchestrator.runner.sessions.request import StartRequest, parse_duration
from orchestrator.runner.sessions.start import start as start_session
from orchestrator.settings.serve import ServeSettings

from . import handoff
from .gate import Gate
from .metrics import Metrics
from .models import ExecBody, RunBody, SessionBody
from .streams import Pipes

STOP_S = 10.0  # SIGTERM to exit: every run and session ended within this


@dataclass(eq=False)
class Execution:
    """One run or exec in flight."""

    kind: str  # "run" | "exec"
    pipes: Pipes
    started: Callable[[], None]  # blocks until decided; raises a refusal
    wait: Callable[[], dict[str, Any]]  # blocks until the end
    cancel: Callable[[], None]  # any thread, idempotent
    after: Callable[[], None] = lambda: None  # once ended: what it used is removed
    pool: str | None = None
    ending: asyncio.Future[dict[str, Any]] | None = None  # the wait for its end, once begun
    settled: bool = False  # counted, tidied, its slot given back


class Service:
    def __init__(self, environ: Mapping[str, str], *, max_concurrent: int | None = None) -> None:
        self.environ = dict(environ)
        self.context = HostContext.from_environ(self.environ, cwd="/")
        self.home = self.context.home
        # A bad config.toml is a ConfigError here: nothing is started.
        self.settings = self.context.config.serve or ServeSettings()
        self.metrics = Metrics()
        self.gate = Gate(
            max_concurrent or self.settings.max_concurrent, self.settings.max_queue, self.metrics
        )
        self.pools: dict[tuple[str, str], Pool] = {}
        self.inflight: set[Execution] = set()
        self.sessions: dict[str, Path] = {}  # started here: id → its owned record
        self.stopping = False
        self._lock = threading.Lock()
        self._forkserver: ForkServer | None = None
        self._lock_fd: int | None = None
        self.workspaces = Path(self.settings.workspace_root)
        self._threads: anyio.CapacityLimiter | None = None

    def threads(self) -> anyio.CapacityLimiter:
        """The threads that wait for runs to end: one per run in flight (anyio's
        default of 40 would hold the 41st run's end behind the others)."""
        if self._threads is None:  # made on the loop: anyio needs one
            self._threads = anyio.CapacityLimiter(self.gate.limit + 16)
        return self._threads

    # --- life ---------------------------------------------------------------------

    def open(self) -> None:
        self._lock_fd = owned.hold_lock(self.home)
        for line in tidy.leftovers(self.home, serving=True):
            logger.info("removed a leftover: {}", line)
        self.workspaces = owned.workspace_root(self.settings.workspace_root)
        known = self.context.store.all()
        for profile, _backend, _size in self.settings.pools:
            if profile not in known:
                raise ConfigError(
                    f"[serve.pools] names profile {profile!r}, which does not exist",
                    hint=f"profiles: {', '.join(known)}",
                )
        self._forkserver = ForkServer(self.environ)
        for profile, backend, size in self.settings.pools:
            pool = Pool(
                profile,
                backend,
                size,
                environ=self.environ,
                home=self.home,
                workspaces=self.workspaces,
                on_change=lambda p: self.metrics.pool_size.labels(p.name).set(p.ready),
            )
            self.pools[(profile, backend)] = pool
            pool.begin()

    def close(self) -> None:
        """End everything within ``STOP_S``; each end is audited where it happens."""
        self.stopping = True
        for execution in list(self.inflight):
            execution.cancel()
        stoppers = [threading.Thread(target=p.stop) for p in self.pools.values()]
        stoppers += [
            threading.Thread(target=self.stop_session, args=(sid,)) for sid in list(self.sessions)
        ]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(timeout=STOP_S)
        if self._forkserver is not None:
            self._forkserver.close(timeout_s=STOP_S)
        if self._lock_fd is not None:
            os.close(self._lock_fd)

    # --- runs and execs ------------------------------------------------------------

    def begin_run(self, body: RunBody) -> Execution:
        requested_at = time.monotonic()
        self._own_workspace(body.workspace)
        pool = self.pools.get((body.profile or "", body.backend or ""))
        fits = pool is not None and body.workspace is None and not handoff.fixed_options(body)
        if pool is not None and fits:
            pooled = pool.claim()
            if pooled is not None:
                self.metrics.pool_hits.labels(pool.name).inc()
                return self._pooled_exec(pool, pooled, body, requested_at)
            self.metrics.pool_misses.labels(pool.name).inc()
        return self._cold_run(body)

    def begin_exec(self, session_id: str, body: ExecBody) -> Execution:
        state = self._visible(session_id)
        pipes = Pipes.open(body.stdin)
        try:
            sock = client.begin(
                self.home, state.id, handoff.exec_message(body, self.environ), stdio=pipes.theirs
            )
        except BaseException:
            pipes.handed_over()
            pipes.close()
            raise
        pipes.handed_over()
        return self._track(
            Execution(
                kind="exec",
                pipes=pipes,
                started=lambda: None,
                wait=lambda: handoff.exec_result(client.finish(sock)),
                cancel=lambda: handoff.shut_write(sock),
                after=sock.close,
            )
        )

    def _pooled_exec(
        self, pool: Pool, pooled: Pooled, body: RunBody, requested_at: float
    ) -> Execution:
        pipes = Pipes.open(body.stdin)
        # Copies of the run's ends, kept until the pooled sandbox has started the command:
        # one that cannot (see _never_started) is broken, and the run goes cold on these.
        spare = handoff.Spare(pipes.theirs)
        message = handoff.exec_message(body, self.environ)
        try:
            sock = client.begin(self.home, pooled.session_id, message, stdio=pipes.theirs)
        except BaseException:
            pipes.handed_over()
            pipes.close()
            spare.close()
            threading.Thread(target=pool.discard, args=(pooled,), daemon=True).start()
            raise
        pipes.handed_over()
        self.metrics.claim_seconds.labels(pool.name).observe(time.monotonic() - requested_at)
        cancel: dict[str, Any] = {"now": lambda: handoff.shut_write(sock), "asked": False}

        def cancelled() -> None:
            cancel["asked"] = True
            cancel["now"]()

        def wait() -> dict[str, Any]:
            try:
                result = handoff.exec_result(client.finish(sock))
                if not handoff.never_started(result) or cancel["asked"]:
                    return handoff.emptied(pooled.workspace, result)
                logger.warning(
                    "pool {}: a pooled sandbox could not start a command ({}); the run goes cold",
                    pool.name,
                    result.get("detail"),
                )
                self.metrics.pool_broken.labels(pool.name).inc()
                channel, record = self._launch_cold(body, spare.fds)
                spare.close()  # the run's process has its own copies now
                cancel["now"] = channel.cancel
                try:
                    channel.started()
                    return {**channel.wait(), "pooled": False}
                finally:
                    channel.close()
                    if record is not None:
                        owned.forget(record)
            finally:
                spare.close()

        def after() -> None:
            sock.close()
            # Used once: destroyed, never put back (a thread: the client has its answer).
            threading.Thread(target=pool.discard, args=(pooled,), daemon=True).start()

        return self._track(
            Execution(
                kind="run",
                pipes=pipes,
                started=lambda: None,
                wait=wait,
                cancel=cancelled,
                after=after,
                pool=pool.name,
            )
        )

    def _launch_cold(
        self, body: RunBody, stdio: tuple[int, int, int]
    ) -> tuple[RunChannel, Path | None]:
        """A cold run of ``body`` through the fork server, with ``stdio`` (the caller
        keeps its copies), and the record of its scratch workspace (if it has one)."""
        if self._forkserver is None or self.stopping:
            raise CodexBoxError("the server is stopping", hint="retry against the next one")
        request = body.model_dump(exclude={"stdin"}, exclude_none=True)
        record: Path | None = None
        if body.workspace is None:  # a fresh, empty one: the same as a pooled run's
            record, request["workspace"] = owned.new_workspace(
                self.home, self.workspaces, kind="scratch"
            )
        try:
            return self._forkserver.launch(request, stdio), record
        except BaseException:
            if record is not None:
                owned.forget(record)
            raise

    def _cold_run(self, body: RunBody) -> Execution:
        pipes = Pipes.open(body.stdin)
        try:
            channel, record = self._launch_cold(body, pipes.theirs)
        except BaseException:
            pipes.handed_over()
            pipes.close()
            raise
        pipes.handed_over()

        def after() -> None:
            channel.close()
            if record is not None:
                owned.forget(record)

        return self._track(
            Execution(
                kind="run",
                pipes=pipes,
                started=channel.started,
                wait=channel.wait,
                cancel=channel.cancel,
                after=after,
            )
        )

    def _track(self, execution: Execution) -> Execution:
        with self._lock:
            self.inflight.add(execution)
        return execution

    def finished(self, execution: Execution, result: dict[str, Any] | None) -> None:
        """The execution ended (``result`` None: with an error); tidy and count it."""
        with self._lock:
            self.inflight.discard(execution)
        try:
            execution.after()
        finally:
            execution.pipes.close()

    # --- sessions ------------------------------------------------------------------

    def start_session(self, body: SessionBody) -> dict[str, Any]:
        if self.stopping:
            raise CodexBoxError("the server is stopping", hint="retry against the next one")
        pool = self.pools.get((body.profile or "", body.backend or ""))
        if (
            pool is not None
            and body.workspace is None
            and not handoff.fixed_options(body)
            and not body.name
        ):
            pooled = pool.claim()
            if pooled is not None:
                self.metrics.pool_hits.labels(pool.name).inc()
                with self._lock:
                    self.sessions[pooled.session_id] = pooled.record
                return {**self.session_info(pooled.session_id), "pooled": True}
            self.metrics.pool_misses.labels(pool.name).inc()
        self._own_workspace(body.workspace)
        record, workspace = None, body.workspace
        if workspace is None:
            record, workspace = owned.new_workspace(
                self.home, self.workspaces, kind="scratch", session_name=body.name
            )
        else:
            record = owned.new_session_record(self.home, body.name)
        try:
            state = start_session(
                StartRequest(
                    environ=self.environ,
                    cwd=workspace,
                    profile=body.profile,
                    workspace=workspace,
                    backend=body.backend,
                    options=LaunchOptions(
                        memory=body.memory, pids=body.pids, cpus=body.cpus, image=body.image
                    ),
                    trust_opt_in=body.trust,
                    policy_mode=body.policy_mode,
                    name=body.name,
                    idle_timeout_s=parse_duration("idle_timeout", body.idle_timeout),
                    max_lifetime_s=parse_duration("max_lifetime", body.max_lifetime),
                )
            )
        except BaseException:
            owned.forget(record)
            raise
        session_id = str(state["id"])
        owned.note_session(record, session_id)
        with self._lock:
            self.sessions[session_id] = record
        return self.session_info(session_id)

    def session_info(self, ref: str) -> dict[str, Any]:
        state = self._visible(ref)
        return {**state.public(), "live": store.alive(state), "pooled": False}

    def _visible(self, ref: str) -> store.SessionState:
        """A live session a client may use: never a pooled one nobody has claimed (it
        must reach its one claimer as it was made)."""
        state = store.find(self.home, ref)
        if (state.name or "").startswith("pool-") and state.id not in self.sessions:
            raise store.UnknownSession(f"no session {ref!r}", hint="GET /v1/sessions lists them")
        return state

    def _own_workspace(self, workspace: str | None) -> None:
        """A host workspace may not be (or hold, or be inside) the pooled and scratch
        workspaces' root: a run there could write into the sandboxes of later claims."""
        if workspace is None:
            return
        given = os.path.realpath(workspace)
        root = os.path.realpath(self.workspaces)
        if given == root or given.startswith(root + os.sep) or root.startswith(given + os.sep):
            raise Refused(
                f"workspace {workspace} holds or is inside the server's workspaces ({root})",
                hint="use a project directory of your own",
            )

    def list_sessions(self) -> list[dict[str, Any]]:
        return [
            {**state.public(), "live": live, "pooled": False}
            for state, live in store.all_sessions(self.home)
            if not (state.name or "").startswith("pool-") or state.id in self.sessions
        ]

    def stop_session(self, ref: str) -> None:
        """Stop a session (the CLI's and the reverse) and forget what this server made
        for it; UnknownSession when none such lives."""
        state = self._visible(ref)
        with contextlib.suppress(CodexBoxError):  # already stopping or gone
            client.request(self.home, state.id, {"op": "stop"})
        client.wait_stopped(self.home, state.id, timeout_s=STOP_S)
        with self._lock:
            record = self.sessions.pop(state.id, None)
        if record is not None:
            owned.forget(record)
