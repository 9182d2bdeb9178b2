"""The concurrency gate: N at once, a bounded FIFO queue behind them, QueueFull beyond,
and the counts right whatever is cancelled when."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.serve.gate import Gate, QueueFull
from orchestrator.serve.metrics import Metrics


def gauge(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_within_the_limit_acquire_is_immediate() -> None:
    async def main() -> None:
        metrics = Metrics()
        gate = Gate(2, 4, metrics)
        await asyncio.wait_for(gate.acquire(), timeout=0.5)
        await asyncio.wait_for(gate.acquire(), timeout=0.5)
        assert gate.running == 2 and gate.waiting == 0
        assert gauge(metrics, "codex_box_running") == 2

    asyncio.run(main())


def test_beyond_the_limit_a_request_waits_in_the_queue() -> None:
    async def main() -> None:
        metrics = Metrics()
        gate = Gate(1, 4, metrics)
        await gate.acquire()
        waiter = asyncio.create_task(gate.acquire())
        await settle()
        assert not waiter.done()
        assert gate.running == 1 and gate.waiting == 1
        assert gauge(metrics, "codex_box_queue_depth") == 1
        gate.release()
        await asyncio.wait_for(waiter, timeout=0.5)
        assert gate.running == 1 and gate.waiting == 0
        assert gauge(metrics, "codex_box_queue_depth") == 0
        gate.release()
        assert gate.running == 0
        assert gauge(metrics, "codex_box_running") == 0

    asyncio.run(main())


def test_beyond_limit_and_queue_acquire_raises_queue_full() -> None:
    async def main() -> None:
        metrics = Metrics()
        gate = Gate(1, 2, metrics)
        await gate.acquire()
        waiters = [asyncio.create_task(gate.acquire()) for _ in range(2)]
        await settle()
        with pytest.raises(QueueFull):
            await gate.acquire()
        assert gate.running == 1 and gate.waiting == 2
        assert gauge(metrics, "codex_box_queue_rejected_total") == 1
        for task in waiters:
            task.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)

    asyncio.run(main())


def test_a_queue_of_zero_refuses_at_once_when_every_slot_is_taken() -> None:
    async def main() -> None:
        gate = Gate(1, 0, Metrics())
        await gate.acquire()
        with pytest.raises(QueueFull):
            await gate.acquire()

    asyncio.run(main())


def test_a_freed_slot_goes_to_the_oldest_waiter_and_a_newcomer_cannot_overtake() -> None:
    async def main() -> None:
        gate = Gate(1, 8, Metrics())
        await gate.acquire()
        order: list[str] = []

        async def take(name: str) -> None:
            await gate.acquire()
            order.append(name)

        first = asyncio.create_task(take("first"))
        await settle()
        second = asyncio.create_task(take("second"))
        await settle()
        gate.release()  # to "first"; "running" stays 1
        newcomer = asyncio.create_task(take("newcomer"))  # arrives before "first" resumes
        await settle()
        assert order == ["first"]
        assert gate.running == 1 and gate.waiting == 2
        gate.release()
        await settle()
        assert order == ["first", "second"]
        gate.release()
        await settle()
        assert order == ["first", "second", "newcomer"]
        gate.release()
        assert gate.running == 0 and gate.waiting == 0
        await asyncio.gather(first, second, newcomer)

    asyncio.run(main())


def test_a_cancelled_waiter_leaves_the_queue_and_the_counts_stay_right() -> None:
    async def main() -> None:
        metrics = Metrics()
        gate = Gate(1, 4, metrics)
        await gate.acquire()
        gone = asyncio.create_task(gate.acquire())
        stays = asyncio.create_task(gate.acquire())
        await settle()
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert gate.waiting == 1
        assert gauge(metrics, "codex_box_queue_depth") == 1
        gate.release()
        await asyncio.wait_for(stays, timeout=0.5)
        assert gate.running == 1 and gate.waiting == 0
        gate.release()
        assert gate.running == 0

    asyncio.run(main())


def test_a_waiter_cancelled_right_after_being_handed_the_slot_passes_it_on() -> None:
    async def main() -> None:
        gate = Gate(1, 4, Metrics())
        await gate.acquire()
        handed = asyncio.create_task(gate.acquire())
        next_one = asyncio.create_task(gate.acquire())
        await settle()
        gate.release()  # handed's future is set ...
        handed.cancel()  # ... and it is cancelled before it resumed
        with pytest.raises(asyncio.CancelledError):
            await handed
        await asyncio.wait_for(next_one, timeout=0.5)
        assert gate.running == 1 and gate.waiting == 0
        gate.release()
        assert gate.running == 0

    asyncio.run(main())


def test_the_last_waiter_cancelled_after_the_handover_frees_the_slot() -> None:
    async def main() -> None:
        gate = Gate(1, 4, Metrics())
        await gate.acquire()
        handed = asyncio.create_task(gate.acquire())
        await settle()
        gate.release()
        handed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await handed
        assert gate.running == 0 and gate.waiting == 0
        await asyncio.wait_for(gate.acquire(), timeout=0.5)  # free again
        assert gate.running == 1

    asyncio.run(main())


def test_a_waiter_cancelled_just_before_a_release_still_ends_cancelled() -> None:
    async def main() -> None:
        gate = Gate(1, 4, Metrics())
        await gate.acquire()
        waiter = asyncio.create_task(gate.acquire())
        await settle()
        waiter.cancel()  # its future is cancelled now; the task resumes later
        gate.release()  # skips the cancelled future: no one waits, the slot is freed
        assert gate.running == 0 and gate.waiting == 0
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(main())
