"""codex-box on Docker vs the equivalent raw `docker run`, in alternating pairs.

    .venv/bin/python bench/docker_overhead.py [--pairs 15]

Each pair runs, back to back and in alternating order:
  codex-box run --backend docker --image codex-box/test --profile offline -- true
  docker run --rm --network none --read-only --cap-drop ALL codex-box/test true
and the median of the per-pair ratios is printed (target ≤ 1.3), with where codex-box's
own time goes: interpreter start-up, the CLI's imports, the Docker backend's imports,
and the engine calls a run makes beyond what `docker run` makes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def timed(argv: list[str], **kw: object) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - start


def import_ms(module: str) -> float:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                         capture_output=True, text=True, check=True).stderr
    match = re.search(rf"\|\s+(\d+) \| {re.escape(module)}\n", out)
    return int(match.group(1)) / 1000 if match else float("nan")


def extra_calls_ms() -> float:
    from orchestrator.backends.engine_api import Endpoint

    api = Endpoint(os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")
    start = time.perf_counter()
    for _ in range(10):
        api.ping()
        api.has_image("codex-box/test")
        api.call("GET", "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22x%22%5D%7D")
        api.request("GET", "/containers/none/json")
    return (time.perf_counter() - start) * 100


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=15)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="codex-box-bench-"))
    (home / "ws").mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home / ".codex")}
    ours = [str(VENV_BIN / "codex-box"), "run", "--backend", "docker", "--image",
            "codex-box/test", "--profile", "offline", "--", "true"]
    raw = ["docker", "run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL",
           "codex-box/test", "true"]
    kw = {"cwd": home / "ws", "env": env}
    timed(ours, **kw), timed(raw, **kw)  # warm-up
    ratios, mine, theirs = [], [], []
    for i in range(args.pairs):
        if i % 2:
            b, a = timed(raw, **kw), timed(ours, **kw)
        else:
            a, b = timed(ours, **kw), timed(raw, **kw)
        mine.append(a)
        theirs.append(b)
        ratios.append(a / b)
    print(f"{args.pairs} alternating pairs")
    print(f"  codex-box --backend docker   median {statistics.median(mine) * 1000:7.1f} ms")
    print(f"  raw docker run (hardened)    median {statistics.median(theirs) * 1000:7.1f} ms")
    print(f"  median ratio                 {statistics.median(ratios):.2f} (target <= 1.3)")
    startup = statistics.median(timed([sys.executable, "-c", "pass"]) for _ in range(10))
    print("where codex-box's own time goes:")
    print(f"  python start-up                {startup * 1000:7.1f} ms")
    for module in ("orchestrator.cli", "orchestrator.backends.docker"):
        print(f"  import {module:24}{import_ms(module):7.1f} ms (cumulative)")
    print(f"  extra engine calls (ping, image, leftovers, inspect) {extra_calls_ms():5.1f} ms")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
