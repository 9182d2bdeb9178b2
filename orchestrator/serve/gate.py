"""The concurrency limit: at most N runs and execs at once, a bounded queue behind them,
and beyond it a refusal the client can act on (429 with Retry-After).

Owns: the counting, on the event loop's thread (no lock: nothing here awaits between
reading and changing a count). A freed slot is handed to the oldest waiter directly, so
a newcomer cannot overtake the queue. ``release`` is not a coroutine: it is called from
``finally`` blocks that may already be cancelled.
Does not own: the HTTP answer (``routes``).
"""

from __future__ import annotations

import asyncio
import collections

from .metrics import Metrics


class QueueFull(Exception):
    """Every slot is taken and the queue is full."""


class Gate:
    def __init__(self, limit: int, queue: int, metrics: Metrics) -> None:
        self.limit, self.queue = limit, queue
        self.metrics = metrics
        self.running = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        """A slot, after waiting in the queue for one; ``QueueFull`` when it is full."""
        if self.running < self.limit and not self._waiters:
            self._took()
            return
        if len(self._waiters) >= self.queue:
            self.metrics.rejected.inc()
            raise QueueFull
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.metrics.queued.set(len(self._waiters))
        try:
            await waiter  # set: the slot was handed to us
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over as we were cancelled: pass it on
            elif waiter in self._waiters:  # (a release may have dropped it already)
                self._waiters.remove(waiter)
                self.metrics.queued.set(len(self._waiters))
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            self.metrics.queued.set(len(self._waiters))
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; running stays the same
                return
        self.running -= 1
        self.metrics.running.set(self.running)

    def _took(self) -> None:
        self.running += 1
        self.metrics.running.set(self.running)
