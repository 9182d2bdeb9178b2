"""Execution-policy speed, measured (never asserted in tests).

    .venv/bin/python bench/policy_eval.py [--repeat 200]

Over the decision table of tests/unit/test_policy_table.py (every row, the same paths
as the test: a real temporary workspace with its symlinks), prints:
  - evaluation: the median over the rows of each row's median time per evaluation
    (µs, after load), with the p95 and the slowest row;
  - load: `load_policy()` of the shipped default.policy in a warm process (median of 20),
    and cold in a fresh interpreter (import of the policy package + first load);
  - the floor beside it: `shlex.split` of the same lines, to put the numbers in scale.
Targets (issue 6): ≤ 200 µs per command after load, policy load ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.policy import Context, Policy, load_policy  # noqa: E402
from tests.unit import test_policy_table as table  # noqa: E402

COLD = (
    "import time; t0 = time.perf_counter(); from orchestrator.policy import load_policy; "
    "t1 = time.perf_counter(); load_policy(); t2 = time.perf_counter(); "
    "print(f'{(t1 - t0) * 1e3:.1f} {(t2 - t1) * 1e3:.1f}')"
)


def per_call_us(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    base = Path(os.path.realpath(tempfile.mkdtemp(prefix="codex-box-policy-bench-")))
    paths = {"%WS%": str(base / "ws"), "%HOME%": str(base / "home"),
             "%OUT%": str(base / "outside"), "%TMP%": str(base / "scratch")}
    for path in paths.values():
        Path(path).mkdir()
    context = Context(cwd=paths["%WS%"], home=paths["%HOME%"],
                      writable_roots=(paths["%WS%"], paths["%TMP%"]),
                      protected_paths=(f"{paths['%WS%']}/.git", f"{paths['%WS%']}/.codex"))

    def fill(text: str) -> str:
        for key, value in paths.items():
            text = text.replace(key, value)
        return text

    rows = []
    for param in table.TABLE:
        cmd = param.values[0]
        argv = ["bash", "-c", fill(cmd)] if isinstance(cmd, str) else [fill(a) for a in cmd]
        rows.append((param.id, argv))

    warm_loads = []
    for _ in range(20):
        start = time.perf_counter()
        rules = load_policy()
        warm_loads.append((time.perf_counter() - start) * 1e3)
    policy = Policy(rules)
    for _, argv in rows:  # first call per row: parser and caches warm
        policy.evaluate(argv, context)

    results = sorted(
        (per_call_us(lambda a=argv: policy.evaluate(a, context), args.repeat), name)
        for name, argv in rows
    )
    floors = [per_call_us(lambda a=argv: shlex.split(shlex.join(a)), args.repeat)
              for _, argv in rows]
    colds = [subprocess.run([sys.executable, "-c", COLD], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split() for _ in range(5)]
    medians = [us for us, _ in results]
    p95 = medians[int(len(medians) * 0.95) - 1]
    print(f"policy evaluation over {len(rows)} table rows ({args.repeat} runs each, after load)")
    print(f"  median of row medians   {statistics.median(medians):8.1f} µs   (target ≤ 200)")
    print(f"  p95 row                 {p95:8.1f} µs")
    print(f"  slowest row             {results[-1][0]:8.1f} µs  {results[-1][1]}")
    print(f"  floor: shlex round trip {statistics.median(floors):8.1f} µs")
    print(f"policy load (default.policy)      warm median {statistics.median(warm_loads):6.1f} ms"
          "   (target ≤ 50)")
    imports = statistics.median(float(c[0]) for c in colds)
    loads = statistics.median(float(c[1]) for c in colds)
    print(f"  cold process: import {imports:.1f} ms + first load {loads:.1f} ms (median of 5)")


if __name__ == "__main__":
    main()
