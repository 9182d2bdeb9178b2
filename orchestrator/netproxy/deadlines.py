"""Many deadlines of one length on one timer.

Owns: the proxy's per-connection deadlines (a head within HEAD_TIMEOUT_S of the accept,
each connect attempt within CONNECT_TIMEOUT_S). Deadlines of one length expire in the
order they were set, so one ordered dict and one loop timer serve them all: setting and
clearing one is a dict insert and delete, where a timer of its own costs a timer handle
each (the dearest part of a proxied request after the socket calls, under uvloop).
Does not own: what happens when a deadline passes (the caller's callback).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

from orchestrator.core.log import debug


class Deadlines:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._pending: dict[int, tuple[float, Callable[[], None]]] = {}  # oldest first
        self._ids = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, loop: asyncio.AbstractEventLoop, expire: Callable[[], None]) -> int:
        """Call ``expire`` ``seconds`` from now, unless ``clear`` comes first."""
        when = loop.time() + self.seconds
        key = next(self._ids)
        self._pending[key] = (when, expire)
        if self._timer is None:
            self._timer = loop.call_at(when, self._fire, loop)
        return key

    def clear(self, key: int) -> None:
        self._pending.pop(key, None)  # the timer stays: it finds the next one due

    def __len__(self) -> int:
        return len(self._pending)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        while self._pending:
            key = next(iter(self._pending))
            when, expire = self._pending[key]
            if when > now:
                self._timer = loop.call_at(when, self._fire, loop)
                return
            del self._pending[key]
            try:
                expire()
            except Exception as exc:  # a bug in one caller: the others still expire
                debug("egress deadline callback failed", error=repr(exc))
