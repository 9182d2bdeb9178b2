"""Launch overhead, measured side by side in one run (never asserted in tests).

    .venv/bin/python bench/launch_overhead.py [--runs 30]

Compares, interleaved round-robin so drift hits every contender alike:
  /bin/true                                   the floor
  bwrap --ro-bind / / --unshare-all true      a peer sandbox (Debian bubblewrap), if installed
  codex sandbox -- true (Rust binary)         Codex CLI's vendored binary, if installed
                                              (npm install -g @openai/codex)
  codex sandbox -- true (npm shim)            the same through its node launcher
  srt true                                    Anthropic's sandbox runtime, if installed
  codex-box run --profile offline -- true     the installed CLI, end to end (native)
  ... with PYTHONDONTWRITEBYTECODE=1          the same where nothing may be cached
  Runner(...).run() in a warm process         the sandbox without CLI start-up
and prints medians, the issue-19 targets (CLI ≤ 100 ms and ≤ 2.5x Codex's Rust binary,
warm ≤ 3x bwrap) as met / NOT met, and where the CLI's time goes: interpreter start-up,
imports (python -X importtime, cumulative, top six), and the run itself.
"""

from __future__ import annotations

import argparse
import glob
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
CLI = "codex-box run --profile offline -- true"
CLI_NO_PYC = f"{CLI} (PYTHONDONTWRITEBYTECODE=1)"
WARM = "Runner.run() (warm, no CLI start-up)"
CODEX_RUST = "codex sandbox -- true (Rust binary)"
CODEX_NPM = "codex sandbox -- true (npm shim)"
BWRAP = "bwrap --unshare-all true"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def codex_binary() -> str | None:
    """The Rust binary the npm package vendors (the shim adds node's start-up)."""
    npm = shutil.which("npm")
    if npm is None:
        return None
    root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True,
                          check=False).stdout.strip()
    found = glob.glob(f"{root}/@openai/codex/node_modules/@openai/codex-linux-*/vendor/*/bin/codex")
    return found[0] if found else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="codex-box-bench-"))
    workspace = home / "ws"
    workspace.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home / ".codex")}

    def sh(argv: list[str], extra: dict[str, str] | None = None) -> Callable[[], object]:
        return lambda: subprocess.run(argv, cwd=workspace, env={**env, **(extra or {})},
                                      check=True, stdout=subprocess.DEVNULL)

    contenders: dict[str, Callable[[], object]] = {"/bin/true": sh(["/bin/true"])}
    absent: list[str] = []
    if bwrap := shutil.which("bwrap"):
        contenders[BWRAP] = sh([bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                                "--unshare-all", "true"])
    else:
        absent.append("bwrap (apt-get install bubblewrap)")
    # Codex refuses a CODEX_HOME under /tmp for its helper links: its own, under ~/.cache.
    codex_home = Path.home() / ".cache" / "codex-box-bench" / "codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    own_home = {"CODEX_HOME": str(codex_home)}
    if rust := codex_binary():
        contenders[CODEX_RUST] = sh([rust, "sandbox", "--", "true"], own_home)
    else:
        absent.append("Codex CLI (npm install -g @openai/codex)")
    if shim := shutil.which("codex"):
        contenders[CODEX_NPM] = sh([shim, "sandbox", "--", "true"], own_home)
    if srt := shutil.which("srt"):
        contenders["srt true"] = sh([srt, "true"])
    else:
        absent.append("srt (npm install -g @anthropic-ai/sandbox-runtime)")
    ours = [str(VENV_BIN / "codex-box"), "run", "--backend", "native", "--profile", "offline",
            "--", "true"]
    contenders[CLI] = sh(ours)
    contenders[CLI_NO_PYC] = sh(ours, {"PYTHONDONTWRITEBYTECODE": "1"})

    from orchestrator.runner.context import HostContext
    from orchestrator.runner.pipeline import Runner, RunRequest

    request = RunRequest(argv=("true",), profile="offline", backend="native")
    context = HostContext.from_environ(env, cwd=str(workspace))
    contenders[WARM] = lambda: Runner(context, request).run()

    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():  # warm-up (also builds the policy cache)
        fn()
    for _ in range(args.runs):
        for name, fn in contenders.items():
            samples[name].append(timed(fn))

    print(f"\nmedian of {args.runs} interleaved runs each, {os.uname().machine}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    for missing in absent:
        print(f"  not installed, so not measured: {missing}")
    print(f"{'contender':58} {'median ms':>10} {'p90 ms':>8}")
    med: dict[str, float] = {}
    results: dict[str, object] = {}
    for name, values in samples.items():
        med[name] = statistics.median(values) * 1000
        p90 = sorted(values)[int(0.9 * (len(values) - 1))] * 1000
        results[name] = {"median_ms": round(med[name], 1), "p90_ms": round(p90, 1)}
        print(f"{name:58} {med[name]:10.1f} {p90:8.1f}")

    def target(label: str, value: float, limit: float, unit: str) -> None:
        verdict = "met" if value <= limit else "NOT met"
        print(f"  {label:52} {value:7.2f}{unit}  target <= {limit:g}{unit}: {verdict}")
        results[label] = round(value, 2)

    print("\ntargets (issue 19):")
    target("codex-box CLI median", med[CLI], 100, " ms")
    if CODEX_RUST in med:
        target("codex-box CLI / Codex Rust binary", med[CLI] / med[CODEX_RUST], 2.5, "x")
    if BWRAP in med:
        target("warm Runner.run() / bwrap", med[WARM] / med[BWRAP], 3, "x")
        print(f"  (codex-box CLI / bwrap: {med[CLI] / med[BWRAP]:.1f}x)")
    target("no-bytecode-writes CLI / CLI", med[CLI_NO_PYC] / med[CLI], 1.1, "x")

    startup = statistics.median(timed(sh([sys.executable, "-c", "pass"])) for _ in range(10))
    run_path = "import orchestrator.cli.launch, orchestrator.backends.native.backend"
    imports = subprocess.run([sys.executable, "-X", "importtime", "-c", run_path],
                             capture_output=True, text=True, check=True).stderr
    cumulative = {m.group(2).strip(): int(m.group(1)) for m in
                  re.finditer(r"import time:\s+\d+ \|\s+(\d+) \|(.*)", imports)}
    total = sum(int(m.group(1)) for m in re.finditer(r"import time:\s+(\d+) \|", imports)) / 1000
    print(f"\nwhere the CLI's {med[CLI]:.0f} ms go: interpreter start-up {startup * 1000:.0f} ms, "
          f"imports of the run path {total:.0f} ms (self times summed), the run itself "
          f"(warm Runner.run) {med[WARM]:.0f} ms")
    top = sorted(cumulative.items(), key=lambda kv: -kv[1])[:6]
    print("largest imports (cumulative ms):")
    for module, micros in top:
        print(f"  {module:40} {micros / 1000:7.1f}")
    results["import_ms"] = {m: round(us / 1000, 1) for m, us in top}
    print(json.dumps(results))
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
