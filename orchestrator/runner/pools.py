"""Warm pools: sessions started ahead of need, each claimed once, then destroyed.

Owns: one pool per ``(profile, backend)`` of ``[serve.pools]`` — its ready sessions,
each with a fresh, empty workspace directory of its own; filling and refilling them in
the background (one start at a time per pool: the machine's cores are the runs'); a
claim (the oldest ready session still alive, or None: a miss); and stopping them all.
A claimed session is the claimer's: it is never put back. Why never reused: whatever
one client ran (a process left behind, a file written outside the workspace into the
sandbox's private /tmp) would be visible to the next.
Does not own: what a claim is used for (``serve``), the record of what the server made
(``owned``), starting a session (``sessions.start``).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from orchestrator.core.errors import CodexBoxError
from orchestrator.core.options import LaunchOptions

from . import owned
from .sessions import client, store
from .sessions.request import MAX_DURATION_S, StartRequest
from .sessions.start import start

RETRY_S = 5.0  # after a failed start: the engine may be down; try again, not in a loop
POOL_LIFETIME_S = min(8 * 3600.0, MAX_DURATION_S)  # a pooled sandbox waits this long at most


@dataclass(frozen=True, slots=True)
class Pooled:
    """One ready sandbox: a live session and the workspace it owns."""

    session_id: str
    workspace: str
    record: Path  # its entry in the server's ``owned`` record
    settings: tuple[tuple[str, int, int], ...]  # ``settings_stamp`` when it started


def settings_stamp(home: Path) -> tuple[tuple[str, int, int], ...]:
    """What a session fixes when it starts and a later change must reach: config.toml
    (the policy's mode, [secrets], …), the user's rules and profiles — each file's name,
    mtime and size. A pooled sandbox started under other settings is not handed out
    (it would judge by the old ones for up to its whole lifetime)."""
    found = []
    for path in (
        home / "config.toml",
        *sorted((home / "rules").glob("*")),
        *sorted((home / "profiles").glob("*")),
    ):
        with contextlib.suppress(OSError):
            info = path.stat()
            found.append((path.name, info.st_mtime_ns, info.st_size))
    return tuple(found)


class Pool:
    def __init__(
        self,
        profile: str,
        backend: str,
        size: int,
        *,
        environ: Mapping[str, str],
        home: Path,
        workspaces: Path,
        on_change: Callable[[Pool], None] = lambda _pool: None,
    ) -> None:
        self.profile, self.backend, self.size = profile, backend, size
        self.name = f"{profile}/{backend}"
        self.environ = dict(environ)
        self.home, self.workspaces = home, workspaces
        self.on_change = on_change
        self.last_error = ""
        self.busy = 0  # sandboxes being started or destroyed now (health, benchmarks)
        self._ready: collections.deque[Pooled] = collections.deque()
        self._lock = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._fill, name=f"codex-box-pool-{self.name}", daemon=True
        )

    def begin(self) -> None:
        self._thread.start()

    @property
    def ready(self) -> int:
        with self._lock:
            return len(self._ready)

    def claim(self) -> Pooled | None:
        """The oldest ready sandbox, now the caller's alone; None when none is ready."""
        while True:
            with self._lock:
                if not self._ready or self._stopping:
                    return None
                pooled = self._ready.popleft()
                self._lock.notify_all()  # the filler starts a replacement
            self.on_change(self)
            state = store.read_state(self.home, pooled.session_id)
            current = pooled.settings == settings_stamp(self.home)
            if state is not None and store.alive(state) and current:
                return pooled
            # It died while waiting (its engine restarted), or the settings changed
            # since it started: destroyed, and the next one tried.
            threading.Thread(target=self.discard, args=(pooled,), daemon=True).start()

    def discard(self, pooled: Pooled) -> None:
        """Stop a claimed (or dead) sandbox and remove its workspace; never raises."""
        with self._counted():
            with contextlib.suppress(CodexBoxError, OSError):
                client.request(self.home, pooled.session_id, {"op": "stop"})
                client.wait_stopped(self.home, pooled.session_id, timeout_s=15.0)
            owned.forget(pooled.record)

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        with self._lock:
            self.busy += 1
        try:
            yield
        finally:
            with self._lock:
                self.busy -= 1

    def stop(self) -> None:
        """Stop filling and destroy every ready sandbox (a start under way finishes
        and is destroyed by the filler)."""
        with self._lock:
            self._stopping = True
            ready, self._ready = list(self._ready), collections.deque()
            self._lock.notify_all()
        for pooled in ready:
            self.discard(pooled)
        self._thread.join(timeout=30.0)

    def _fill(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and len(self._ready) >= self.size:
                    self._lock.wait()
                if self._stopping:
                    return
            with self._counted():
                pooled = self._start_one()
            if pooled is None:
                with self._lock:
                    self._lock.wait(RETRY_S)
                continue
            with self._lock:
                if not self._stopping:
                    self._ready.append(pooled)
                    pooled = None
            if pooled is not None:  # stopped while it started
                self.discard(pooled)
                return
            self.on_change(self)

    def _start_one(self) -> Pooled | None:
        settings = settings_stamp(self.home)  # before: a change during the start counts
        record, workspace = owned.new_workspace(self.home, self.workspaces, kind="pool")
        try:
            state = start(
                StartRequest(
                    environ=self.environ,
                    cwd=workspace,
                    profile=self.profile,
                    workspace=workspace,
                    backend=self.backend,
                    options=LaunchOptions(),
                    name=record.stem,  # "pool-<hex>": what list_sessions hides until claimed
                    idle_timeout_s=POOL_LIFETIME_S,
                    max_lifetime_s=POOL_LIFETIME_S,
                )
            )
        except CodexBoxError as exc:
            self.last_error = exc.one_line()
            logger.warning("pool {}: cannot start a sandbox: {}", self.name, self.last_error)
            owned.forget(record)
            return None
        session_id = str(state["id"])
        owned.note_session(record, session_id)
        self.last_error = ""
        return Pooled(session_id=session_id, workspace=workspace, record=record, settings=settings)


def wait_filled(pools: list[Pool], timeout_s: float) -> bool:
    """Until every pool is full (tests, benchmarks); False at the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(p.ready >= p.size for p in pools):
            return True
        time.sleep(0.05)
    return False
