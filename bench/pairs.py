"""Shared by the engine benchmarks: timing a command, alternating pairs, import costs."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field


def timed(argv: list[str], **kw: object) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - start


def import_ms(module: str) -> float:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                         capture_output=True, text=True, check=True).stderr
    match = re.search(rf"\|\s+(\d+) \| {re.escape(module)}\n", out)
    return int(match.group(1)) / 1000 if match else float("nan")


def python_startup_ms() -> float:
    return statistics.median(timed([sys.executable, "-c", "pass"]) for _ in range(10)) * 1000


@dataclass
class Pairs:
    """``ours`` against each peer, in rounds whose order rotates (no command always
    runs first, after the same neighbour)."""

    ours: list[float] = field(default_factory=list)
    peers: dict[str, list[float]] = field(default_factory=dict)

    def run(self, ours: list[str], peers: dict[str, list[str]], rounds: int,
            **kw: object) -> None:
        commands = {"ours": ours, **peers}
        for argv in commands.values():
            timed(argv, **kw)  # warm-up: page cache, engine caches
        names = list(commands)
        for i in range(rounds):
            order = names[i % len(names):] + names[:i % len(names)]
            for name in order:
                elapsed = timed(commands[name], **kw)
                (self.ours if name == "ours" else self.peers.setdefault(name, [])).append(elapsed)

    def ratio(self, peer: str) -> float:
        """The median of the per-round ratios ours / peer."""
        return statistics.median(a / b for a, b in zip(self.ours, self.peers[peer], strict=True))

    @staticmethod
    def median_ms(values: list[float]) -> float:
        return statistics.median(values) * 1000
