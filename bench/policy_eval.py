"""Execution-policy speed, measured (never asserted in tests).

    .venv/bin/python bench/policy_eval.py [--repeat 200] [--processes 7]

Over the decision table of tests/unit/policy/test_policy_table.py (every row, the same
paths as the test: a real temporary workspace with its symlinks), prints:
  - evaluation: the median over the rows of each row's median time per evaluation
    (µs, after load), with the p95 and the slowest row;
  - load, in a warm process (after import), median of --repeat: `load_policy()` from
    source (Starlark), and `load_policy(codex_home=H)` + one evaluation of `true` from the
    compiled-policy cache under a temporary CODEX_HOME, read from its file each time and
    from the process's memory (what a session launching many commands pays);
  - load in fresh processes, source and cache interleaved, median of --processes: the
    import of the policy package, then load (+ one evaluation of `true`), and whether
    Starlark was imported;
  - the floor beside it: `shlex.split` of the same lines, to put the numbers in scale.
Targets: ≤ 200 µs per command after load (issue 6); from a warm cache, load + evaluate
one command ≤ 1 ms (issue 19), with no Starlark import.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.policy import Context, Policy, cache, load_policy  # noqa: E402
from tests.unit.policy import test_policy_table as table  # noqa: E402

TARGET_EVAL_US = 200
TARGET_CACHED_MS = 1.0
FRESH = """
import sys, time
t0 = time.perf_counter()
from pathlib import Path
from orchestrator.policy import Context, Policy, load_policy
t1 = time.perf_counter()
home = Path(sys.argv[1]) if len(sys.argv) > 1 else None
rules = load_policy(codex_home=home)
Policy(rules).evaluate(["true"], Context(cwd="/", home="/root", writable_roots=("/tmp",)))
t2 = time.perf_counter()
print(f"{(t1 - t0) * 1e3:.2f} {(t2 - t1) * 1e3:.2f} {'starlark' in sys.modules}")
"""


def per_call_us(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000


def fresh(home: Path | None) -> tuple[float, float, str]:
    argv = [sys.executable, "-c", FRESH] + ([str(home)] if home else [])
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True)
    imported, loaded, starlark = out.stdout.split()
    return float(imported), float(loaded), starlark


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--processes", type=int, default=7)
    args = parser.parse_args()
    base = Path(os.path.realpath(tempfile.mkdtemp(prefix="codex-box-policy-bench-")))
    try:
        measure(args, base)
    finally:
        shutil.rmtree(base)


def measure(args: argparse.Namespace, base: Path) -> None:
    paths = {
        "%WS%": str(base / "ws"),
        "%HOME%": str(base / "home"),
        "%OUT%": str(base / "outside"),
        "%TMP%": str(base / "scratch"),
    }
    for path in paths.values():
        Path(path).mkdir()
    codex_home = base / "codex-home"
    context = Context(
        cwd=paths["%WS%"],
        home=paths["%HOME%"],
        writable_roots=(paths["%WS%"], paths["%TMP%"]),
        protected_paths=(f"{paths['%WS%']}/.git", f"{paths['%WS%']}/.codex"),
    )

    rows = []
    for param in table.TABLE:
        cmd = param.values[0]
        argv = (
            ["bash", "-c", table.fill(cmd, paths)]
            if isinstance(cmd, str)
            else [table.fill(a, paths) for a in cmd]
        )
        rows.append((param.id, argv))

    policy = Policy(load_policy())
    for _, argv in rows:  # first call per row: parser and caches warm
        policy.evaluate(argv, context)
    results = sorted(
        (per_call_us(lambda a=argv: policy.evaluate(a, context), args.repeat), name)
        for name, argv in rows
    )
    floors = [
        per_call_us(lambda a=argv: shlex.split(shlex.join(a)), args.repeat) for _, argv in rows
    ]

    load_policy(codex_home=codex_home)  # writes the cache entry

    def from_file() -> None:
        cache.MEMO.clear()
        Policy(load_policy(codex_home=codex_home)).evaluate(["true"], context)

    def from_memory() -> None:
        Policy(load_policy(codex_home=codex_home)).evaluate(["true"], context)

    source_ms, file_ms, memory_ms = [], [], []
    for _ in range(5):  # interleaved rounds; the medians of the rounds are shown
        source_ms.append(per_call_us(load_policy, max(args.repeat // 20, 3)) / 1000)
        file_ms.append(per_call_us(from_file, args.repeat) / 1000)
        memory_ms.append(per_call_us(from_memory, args.repeat) / 1000)

    cold_source, cold_cache = [], []
    for _ in range(args.processes):
        cold_source.append(fresh(None))
        cold_cache.append(fresh(codex_home))

    medians = [us for us, _ in results]
    p95 = medians[int(len(medians) * 0.95) - 1]
    median_eval = statistics.median(medians)
    print(f"policy evaluation over {len(rows)} table rows ({args.repeat} runs each, after load)")
    print(
        f"  median of row medians   {median_eval:8.1f} µs   (target ≤ {TARGET_EVAL_US}: "
        f"{'met' if median_eval <= TARGET_EVAL_US else 'NOT met'})"
    )
    print(f"  p95 row                 {p95:8.1f} µs")
    print(f"  slowest row             {results[-1][0]:8.1f} µs  {results[-1][1]}")
    print(f"  floor: shlex round trip {statistics.median(floors):8.1f} µs")
    cached = statistics.median(file_ms)
    print("policy load (default.policy), warm process, median of 5 interleaved rounds")
    print(f"  from source (Starlark)              {statistics.median(source_ms):8.3f} ms")
    print(
        f"  from the cache file + eval `true`   {cached:8.3f} ms   (target ≤ "
        f"{TARGET_CACHED_MS:g}: {'met' if cached <= TARGET_CACHED_MS else 'NOT met'})"
    )
    print(f"  from memory (same process) + eval   {statistics.median(memory_ms):8.3f} ms")
    print(f"  speed-up, cache file vs source      {statistics.median(source_ms) / cached:8.1f}x")
    print(f"fresh process, median of {args.processes} (source and cache interleaved)")
    for name, runs in (("from source", cold_source), ("from cache ", cold_cache)):
        imports = statistics.median(r[0] for r in runs)
        loads = statistics.median(r[1] for r in runs)
        starlark = (
            "imported"
            if all(r[2] == "True" for r in runs)
            else ("never imported" if all(r[2] == "False" for r in runs) else "sometimes imported")
        )
        print(
            f"  {name}: import {imports:6.1f} ms + load and eval `true` {loads:7.2f} ms"
            f"   (Starlark {starlark})"
        )


if __name__ == "__main__":
    main()
