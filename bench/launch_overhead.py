"""Launch overhead, measured side by side in one run (never asserted in tests).

    .venv/bin/python bench/launch_overhead.py [--runs 30]

Compares, interleaved round-robin so drift hits every contender alike:
  /bin/true                                   the floor
  bwrap --ro-bind / / --unshare-all true      a peer sandbox (Debian bubblewrap), if installed
  codex-box run --profile offline -- true     the installed CLI, end to end
  Runner(...).run() in a warm process         the sandbox without CLI start-up
and prints medians, ratios, and the CLI's import time (python -X importtime).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="codex-box-bench-"))
    workspace = home / "ws"
    workspace.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home / ".codex")}

    def sh(argv: list[str]) -> Callable[[], object]:
        return lambda: subprocess.run(argv, cwd=workspace, env=env, check=True,
                                      stdout=subprocess.DEVNULL)

    contenders: dict[str, Callable[[], object]] = {"/bin/true": sh(["/bin/true"])}
    bwrap = shutil.which("bwrap")
    if bwrap:
        contenders["bwrap --unshare-all true"] = sh(
            [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
             "--unshare-all", "true"])
    else:
        print("bwrap not installed (apt-get install bubblewrap): peer skipped")
    contenders["codex-box run --profile offline -- true"] = sh(
        [str(VENV_BIN / "codex-box"), "run", "--backend", "native", "--profile", "offline",
         "--", "true"])

    from orchestrator.runner.context import HostContext
    from orchestrator.runner.pipeline import Runner, RunRequest

    request = RunRequest(argv=("true",), profile="offline", backend="native")
    context = HostContext.from_environ(env, cwd=str(workspace))
    contenders["Runner.run() (warm, no CLI start-up)"] = lambda: Runner(context, request).run()

    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():  # warm-up
        fn()
    for _ in range(args.runs):
        for name, fn in contenders.items():
            samples[name].append(timed(fn))

    floor = statistics.median(samples["/bin/true"])
    print(f"\nmedian of {args.runs} interleaved runs each, {os.uname().machine}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'contender':45} {'median ms':>10} {'p90 ms':>8}")
    results = {}
    for name, values in samples.items():
        med = statistics.median(values)
        p90 = sorted(values)[int(0.9 * (len(values) - 1))]
        results[name] = {"median_ms": round(med * 1000, 2), "p90_ms": round(p90 * 1000, 2)}
        print(f"{name:45} {med * 1000:10.1f} {p90 * 1000:8.1f}")
    if bwrap:
        ratio = (statistics.median(samples["codex-box run --profile offline -- true"])
                 / statistics.median(samples["bwrap --unshare-all true"]))
        print(f"codex-box CLI / bwrap: {ratio:.1f}x   (floor /bin/true {floor * 1000:.1f} ms)")
        results["ratio_cli_vs_bwrap"] = round(ratio, 2)

    imports = subprocess.run([sys.executable, "-X", "importtime", "-c",
                              "import orchestrator.cli.app"],
                             capture_output=True, text=True, check=True).stderr
    cumulative = {m.group(2).strip(): int(m.group(1)) for m in
                  re.finditer(r"import time:\s+\d+ \|\s+(\d+) \|(.*)", imports)}
    top = sorted(cumulative.items(), key=lambda kv: -kv[1])[:6]
    print("\nimport time of orchestrator.cli.app (cumulative, ms):")
    for module, micros in top:
        print(f"  {module:40} {micros / 1000:7.1f}")
    results["import_ms"] = {m: round(us / 1000, 1) for m, us in top}
    print(json.dumps(results))
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
