"""`codex-box serve`, measured side by side in one run (issue 23; never asserted in tests).

    .venv/bin/python bench/serve_bench.py [--rounds 15] [--claims 100] [--no-docker]

One server (its own CODEX_HOME; pools `offline/native` = 8 and, with Docker, `offline/docker`
= 4) is started and kept. Then, in rounds whose order rotates, after one warm-up each:
  api-run     POST /v1/runs of `true`, native, cold (a workspace named), Unix socket
  pool-native POST /v1/runs of `true`, native, no workspace: a warm pool claim + exec
  pool-docker the same on the Docker pool
  bwrap       bwrap --ro-bind / / --dev /dev --proc /proc --unshare-all true
  raw-docker  docker run --rm --network none codex-box/base true (a cold raw container)
Before each measurement (every contender's) the pools are waited for, untimed, until
they are full and none is starting or destroying a sandbox: each is measured on a quiet
machine, the claim warm, as pools are meant to be used.
Targets (medians of the per-round ratios): api-run ≤ 3x bwrap; pool-native ≤ 2x bwrap;
pool-docker ≤ 0.3x raw-docker.

Claim latency, as the public sandbox leaderboards measure it: --claims iterations per pool
of request → the first byte of the command's output (`echo x`, streamed), p50/p95/p99;
targets p50 ≤ 50 ms and p99 ≤ 150 ms.

Throughput: requests/s of cold native `true` runs at concurrency 1, 8 and 50 (60
requests each; the server's max_concurrent is 8, so 50 means 42 queued).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from serve_load import Server, docker_ready

BWRAP = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all", "true"]


def post(sock_path: str, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("localhost", timeout=120)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(sock_path)
    connection.sock = sock
    connection.request(
        "POST", path, body=json.dumps(body), headers={"content-type": "application/json"}
    )
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def first_byte_ms(sock_path: str, body: dict[str, Any]) -> float:
    """Request → the first stdout event of a streamed run (then read to the end)."""
    began = time.perf_counter()
    connection = http.client.HTTPConnection("localhost", timeout=120)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(sock_path)
    connection.sock = sock
    connection.request(
        "POST",
        "/v1/runs?stream=1",
        body=json.dumps(body),
        headers={"content-type": "application/json"},
    )
    response = connection.getresponse()
    first = None
    for line in response:
        event = json.loads(line)
        if first is None and event.get("event") == "stdout":
            first = time.perf_counter()
        if event.get("event") in ("exit", "error"):
            assert event.get("event") == "exit" and event.get("pooled"), event
    connection.close()
    assert first is not None, "no output"
    return (first - began) * 1000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def settled(server: Server, timeout_s: float = 120) -> None:
    """Until every pool is full and none is starting or destroying a sandbox (untimed):
    each measurement is made on a quiet machine, not beside the last one's refill."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pools = server.client().health()["pools"].values()
        if all(p["ready"] >= p["size"] and not p["busy"] for p in pools):
            return
        time.sleep(0.01)
    raise SystemExit(f"the pools did not settle within {timeout_s}s: {server.client().health()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--claims", type=int, default=100)
    parser.add_argument("--no-docker", action="store_true")
    args = parser.parse_args()
    docker = not args.no_docker and docker_ready()
    bwrap = shutil.which("bwrap")
    root = Path(tempfile.mkdtemp(prefix="codex-box-serve-bench-", dir="/var/tmp"))
    pools = {"offline/native": 8, **({"offline/docker": 4} if docker else {})}
    server = Server(root, pools, max_concurrent=8)
    sock_path = str(server.codex_home / "serve.sock")
    workspace = root / "proj"
    workspace.mkdir()
    try:
        server.wait_ready()
        return _measure(args, server, sock_path, workspace, docker, bwrap)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _measure(
    args: argparse.Namespace,
    server: Server,
    sock_path: str,
    workspace: Path,
    docker: bool,
    bwrap: str | None,
) -> int:
    cold = {
        "argv": ["true"],
        "profile": "offline",
        "backend": "native",
        "workspace": str(workspace),
    }

    def timed_post(body: dict[str, Any], pool: str | None = None) -> float:
        settled(server)
        began = time.perf_counter()
        status, data = post(sock_path, "/v1/runs", body)
        took = (time.perf_counter() - began) * 1000
        assert status == 200 and json.loads(data)["exit_code"] == 0, data
        if pool:
            assert json.loads(data)["pooled"], data
        return took

    def timed_cmd(argv: list[str]) -> float:
        settled(server)
        began = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, timeout=120)
        return (time.perf_counter() - began) * 1000

    contenders: dict[str, Any] = {
        "api-run": lambda: timed_post(cold),
        "pool-native": lambda: timed_post(
            {"argv": ["true"], "profile": "offline", "backend": "native"}, "offline/native"
        ),
    }
    if bwrap:
        contenders["bwrap"] = lambda: timed_cmd([bwrap, *BWRAP])
    if docker:
        contenders["pool-docker"] = lambda: timed_post(
            {"argv": ["true"], "profile": "offline", "backend": "docker"}, "offline/docker"
        )
        contenders["raw-docker"] = lambda: timed_cmd(
            ["docker", "run", "--rm", "--network", "none", "codex-box/base", "true"]
        )
    names = list(contenders)
    for name in names:
        contenders[name]()  # warm-up
    times: dict[str, list[float]] = {n: [] for n in names}
    for round_no in range(args.rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for name in order:
            times[name].append(contenders[name]())

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))

    print(f"codex-box serve, {args.rounds} rotating rounds (ms: median / p90)")
    for name in names:
        print(f"  {name:12} {statistics.median(times[name]):8.1f} / {pct(times[name], 0.9):8.1f}")
    targets = []
    if bwrap:
        targets += [("api-run", "bwrap", 3.0), ("pool-native", "bwrap", 2.0)]
    if docker:
        targets.append(("pool-docker", "raw-docker", 0.3))
    for a, b, limit in targets:
        value = ratio(a, b)
        verdict = "met" if value <= limit else "NOT met"
        print(f"  {a} / {b}: {value:.2f}x (target ≤ {limit}x: {verdict})")

    print(f"\nclaim latency, request → first byte of output, {args.claims} warm claims per pool")
    for pool, backend in (("offline/native", "native"), ("offline/docker", "docker")):
        if backend == "docker" and not docker:
            continue
        body = {"argv": ["echo", "x"], "profile": "offline", "backend": backend}
        samples = []
        for _ in range(args.claims):
            settled(server)
            samples.append(first_byte_ms(sock_path, body))
        p50, p95, p99 = pct(samples, 0.5), pct(samples, 0.95), pct(samples, 0.99)
        verdict = "met" if p50 <= 50 and p99 <= 150 else "NOT met"
        print(
            f"  {pool:15} p50 {p50:6.1f}  p95 {p95:6.1f}  p99 {p99:6.1f} ms "
            f"(target p50 ≤ 50, p99 ≤ 150: {verdict})"
        )

    print("\nthroughput, cold native `true` (60 requests per level)")
    for concurrency in (1, 8, 50):
        began = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool_:
            statuses = list(pool_.map(lambda _: post(sock_path, "/v1/runs", cold)[0], range(60)))
        took = time.perf_counter() - began
        assert statuses == [200] * 60, statuses
        print(f"  concurrency {concurrency:2}: {60 / took:6.1f} requests/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
