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
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pairs import Pairs, import_ms, python_startup_ms

VENV_BIN = Path(sys.executable).parent


def extra_calls_ms() -> float:
    from orchestrator.backends.containers.engine_api import Endpoint

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
    pairs = Pairs()
    pairs.run(ours, {"raw": raw}, args.pairs, **kw)
    print(f"{args.pairs} alternating pairs")
    print(f"  codex-box --backend docker   median {pairs.median_ms(pairs.ours):7.1f} ms")
    print(f"  raw docker run (hardened)    median {pairs.median_ms(pairs.peers['raw']):7.1f} ms")
    print(f"  median ratio                 {pairs.ratio('raw'):.2f} (target <= 1.3)")
    print("where codex-box's own time goes:")
    print(f"  python start-up                {python_startup_ms():7.1f} ms")
    for module in ("orchestrator.cli.app", "orchestrator.backends.docker"):
        print(f"  import {module:24}{import_ms(module):7.1f} ms (cumulative)")
    print(f"  extra engine calls (ping, image, leftovers, inspect) {extra_calls_ms():5.1f} ms")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
