"""``GET /metrics``: Prometheus text from ``prometheus_client``, on a registry of its own.

Owns: the metric names and labels. Does not own: when they change (``service``).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics", "exit_class"]

CLAIM_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


def exit_class(exit_code: int | None, *, cancelled: bool = False) -> str:
    """A label with few values: what kind of end it was."""
    if cancelled:
        return "cancelled"
    return {
        None: "none",
        0: "success",
        124: "timeout",
        125: "setup",
        126: "refused",
        127: "not_found",
    }.get(exit_code, "signal" if exit_code is not None and exit_code > 128 else "failure")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "codex_box_runs",
            "Runs and execs by decision, backend and how they ended",
            ["kind", "decision", "backend", "exit_class"],
            registry=r,
        )
        self.running = Gauge("codex_box_running", "Runs and execs running now", registry=r)
        self.queued = Gauge(
            "codex_box_queue_depth", "Runs and execs waiting for a slot", registry=r
        )
        self.rejected = Counter("codex_box_queue_rejected", "Requests refused with 429", registry=r)
        self.pool_size = Gauge("codex_box_pool_size", "Ready sandboxes", ["pool"], registry=r)
        self.pool_hits = Counter(
            "codex_box_pool_hits", "Claims served by a pool", ["pool"], registry=r
        )
        self.pool_misses = Counter(
            "codex_box_pool_misses",
            "Claims a pool could not serve (cold start)",
            ["pool"],
            registry=r,
        )
        self.pool_broken = Counter(
            "codex_box_pool_broken",
            "Pooled sandboxes that could not start a command (the run went cold)",
            ["pool"],
            registry=r,
        )
        self.claim_seconds = Histogram(
            "codex_box_pool_claim_seconds",
            "From the request to the claimed sandbox running the command",
            ["pool"],
            buckets=CLAIM_BUCKETS,
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
