"""Egress proxy throughput and latency, measured side by side in one run (never asserted
in tests).

    .venv/bin/python bench/proxy_bench.py [--quick] [--rounds 5] [--requests 12000]
                                          [--clients 50] [--paced-rate 10]
                                          [--paced-seconds 2] [--profile]
                                          [--proxy-loop default|asyncio]

Three processes, all on 127.0.0.1 (no traffic leaves the machine), so none shares a core
or a GIL with another:
  origin  an asyncio server (this file, --role origin) answering every request with 200
          and exactly 1024 bytes of body, Connection: close;
  proxy   a ProxySession (this file, --role proxy) serving a listener bound on
          127.0.0.1:0, with Egress(allow=origin.test:PORT, methods GET/HEAD/OPTIONS,
          inspect_tls=False, allow_local_hosts=True, hosts origin.test -> 127.0.0.1).
          allow_local_hosts=True only because the bench origin is on loopback: the
          proxy's local-address check (rules.check_address) is therefore skipped. Its
          event loop is the one ProxySession picks (uvloop when installed);
          --proxy-loop asyncio hides uvloop from it, to measure asyncio's own loop;
  load    this process: C asyncio clients, each doing its share of the requests one
          after another, a new TCP connection per request in both modes (the proxy
          serves one request per connection, so direct does the same for a fair
          comparison). direct: `GET /x HTTP/1.1` to the origin; proxied:
          `GET http://origin.test:PORT/x HTTP/1.1` to the proxy. Latency: perf_counter
          from connect start to the last body byte read.
After a warm-up, direct (D) and proxied (P) rounds alternate, the order flipping each
round (D P, P D, ...) so drift hits both alike, at three levels:
  1 client      a closed loop of N requests, one after another;
  C paced       C clients in an open loop: each sends R requests/s on a fixed schedule
                (period 1/R, a random phase per client, the same phases for D and P in
                a round) for S seconds, C*R req/s in all, far below what the machine
                can serve — so the latency is one request's path with C clients
                connected at once, not a queue (a start that finds its client still
                busy with the previous request is late; late starts are counted);
  C clients     a closed loop of N requests shared by C clients, each sending its next
                request as soon as its answer arrives: the machine saturates, req/s is
                the throughput, and mean latency is clients / throughput (Little's law),
                so the added latency there is the proxy's CPU cost per request turned
                into queueing, the more so when three processes share a 2-core machine.
Prints per level and mode: requests/s (median over rounds; offered load at the paced
level), p50/p90/p99 (all the mode's requests pooled), how busy the machine was
(/proc/stat), CPU µs per request of each process, user+system (/proc/PID/stat), and the
added p50 = median over rounds of p50(P) - p50(D), the rounds paired in order.
--profile: afterwards, one more proxied round per level under cProfile in the proxy's
event-loop thread, top functions printed (numbers under the profiler are not results;
under uvloop the loop's own work is C, seen only as the Python calls around it).
Target (issue: egress proxy): added p50 latency <= 2 ms on loopback; the last line says
"met" or "NOT met" for each level, and gives proxied/direct req/s. Reported, never
asserted: the exit status is 1 only when something fails functionally (a non-200, a
short body, a refusal, a timeout, a request count that does not add up).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import random
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BODY_BYTES = 1024
ORIGIN_NAME = "origin.test"
TARGET_ADDED_P50_MS = 2.0
PACED_LEAD_S = 0.05  # open loop: the schedule starts this long after the round
REQUEST_TIMEOUT_S = 10.0  # a request slower than this is a failure, not a sample
LISTEN_BACKLOG = 128  # what the backends give the proxy's listener (netns.py, launcher.py)
TICKS = os.sysconf("SC_CLK_TCK")


# -- the origin process ------------------------------------------------------------------


async def origin_main() -> None:
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        + f"Content-Length: {BODY_BYTES}\r\nConnection: close\r\n\r\n".encode()
        + b"x" * BODY_BYTES
    )
    served = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(response)
            await writer.drain()
            served += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=LISTEN_BACKLOG)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline):  # until the parent's EOF
        pass
    server.close()
    print(json.dumps({"served": served}), flush=True)


# -- the proxy process -------------------------------------------------------------------


def proxy_main(origin_port: int, loop_choice: str) -> None:
    if loop_choice == "asyncio":
        sys.modules["uvloop"] = None  # its import fails: ProxySession takes asyncio's loop
    from orchestrator.core.spec import READ_METHODS, Egress
    from orchestrator.netproxy.session import ProxySession

    egress = Egress(
        allow=(f"{ORIGIN_NAME}:{origin_port}",),
        deny=(),
        methods=READ_METHODS,
        inspect_tls=False,
        allow_local_hosts=True,  # the bench origin is on loopback
        hosts=((ORIGIN_NAME, "127.0.0.1"),),
    )
    refused: list[dict[str, Any]] = []
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(LISTEN_BACKLOG)
    profile = cProfile.Profile()
    with ProxySession(egress, run_id="proxy-bench", audit=refused.append) as session:
        session.serve(listener)
        loop = session._loop  # the proxy's own thread: cProfile profiles one thread
        kind = f"{type(loop).__module__}.{type(loop).__name__}"
        print(f"ready {listener.getsockname()[1]} {kind}", flush=True)
        for line in sys.stdin:
            command = line.split()
            if command == ["profile-on"]:
                profile = cProfile.Profile()
                asyncio.run_coroutine_threadsafe(_call(profile.enable), loop).result()
            elif command == ["profile-off"]:
                asyncio.run_coroutine_threadsafe(_call(profile.disable), loop).result()
                text = io.StringIO()
                stats = pstats.Stats(profile, stream=text)
                stats.sort_stats("tottime").print_stats(22)
                stats.sort_stats("cumulative").print_stats(28)
                print(json.dumps({"profile": text.getvalue()}), flush=True)
    print(json.dumps({"refused": len(refused), "first": refused[:1]}), flush=True)


async def _call(fn: Any) -> None:
    fn()


# -- the load generator (this process) ---------------------------------------------------


class Failure(Exception):
    pass


class Fetch(asyncio.Protocol):
    """One request on a fresh connection: the time the last body byte arrived, then
    wait for the server's close (so TIME_WAIT lands on the server side, not on this
    process's ephemeral ports)."""

    def __init__(self, request: bytes, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.buf = bytearray()
        self.need: int | None = None
        self.body_read: asyncio.Future[float] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.body_read.done():
            return
        if self.need is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            if lines[0].split(" ")[1:2] != ["200"]:
                self.body_read.set_exception(Failure(f"status line {lines[0]!r}"))
                return
            lengths = [ln.partition(":")[2].strip() for ln in lines[1:]
                       if ln.partition(":")[0].strip().lower() == "content-length"]
            if lengths != [str(BODY_BYTES)]:
                self.body_read.set_exception(Failure(f"Content-Length {lengths}"))
                return
            self.need = end + 4 + BODY_BYTES
        if len(self.buf) >= self.need:
            self.body_read.set_result(time.perf_counter())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.body_read.done():
            self.body_read.set_exception(
                Failure(f"connection closed after {len(self.buf)} bytes: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)


@dataclass
class Target:
    name: str  # "direct" or "proxied"
    port: int
    request: bytes


async def fetch(target: Target) -> float:
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    transport, proto = await loop.create_connection(
        lambda: Fetch(target.request, loop), "127.0.0.1", target.port)
    try:
        end = await proto.body_read
        await proto.closed
    finally:
        transport.close()
    if len(proto.buf) != proto.need:
        raise Failure(f"{len(proto.buf)} bytes on the connection, expected {proto.need}")
    return end - start


@dataclass
class Round:
    target: str
    clients: int
    latencies: list[float]
    late: list[float]  # paced: how late each late start was, seconds
    wall_s: float
    cpu_s: dict[str, tuple[float, float]]  # process -> (user, system) seconds
    busy: tuple[int, int]  # the machine's (busy, total) jiffies during the round

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall_s

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat (softirq counted as busy)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(values) - values[3] - values[4], sum(values)


def cpu_seconds(pid: int | None) -> tuple[float, float]:
    """(user, system) CPU seconds of a process (None: this one), from /proc/PID/stat."""
    if pid is None:
        t = os.times()
        return t.user, t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


@dataclass
class Load:
    pids: dict[str, int | None]  # proxy, origin, client (None: this process)
    failures: list[str] = field(default_factory=list)  # the first few
    failed: int = 0
    sent: int = 0

    async def run(self, target: Target, clients: int, total: int) -> Round:
        """A closed loop: ``total`` requests shared by ``clients``, each sending its next
        request when the previous answer has arrived."""
        counts = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
        latencies: list[float] = []

        async def client(count: int) -> None:
            for _ in range(count):
                if not await self._one(target, latencies):
                    return

        return await self._measured(target, clients, latencies, [],
                                    [client(n) for n in counts], total)

    async def run_paced(self, target: Target, clients: int, rate: float, per_client: int,
                        seed: int) -> Round:
        """An open loop: each client sends ``per_client`` requests, one every 1/``rate``
        s from a random phase (``seed``), whether or not the others are busy; a request
        whose client is still waiting for its previous answer starts late."""
        period = 1.0 / rate
        rng = random.Random(seed)
        phases = [rng.random() * period for _ in range(clients)]
        latencies: list[float] = []
        late: list[float] = []
        loop = asyncio.get_running_loop()
        start = loop.time() + PACED_LEAD_S  # every client is waiting before the first is due

        async def client(phase: float) -> None:
            for k in range(per_client):
                delay = start + phase + k * period - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    late.append(-delay)
                if not await self._one(target, latencies):
                    return

        return await self._measured(target, clients, latencies, late,
                                    [client(ph) for ph in phases], clients * per_client,
                                    lead=PACED_LEAD_S)

    async def _one(self, target: Target, latencies: list[float]) -> bool:
        try:
            latencies.append(await asyncio.wait_for(fetch(target), REQUEST_TIMEOUT_S))
        except (OSError, TimeoutError, Failure) as exc:
            self.failed += 1
            if len(self.failures) < 3:
                self.failures.append(f"{target.name}: {type(exc).__name__}: {exc}")
            return False
        return True

    async def _measured(self, target: Target, clients: int, latencies: list[float],
                        late: list[float], work: list[Any], total: int,
                        lead: float = 0.0) -> Round:
        before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        ticks = machine_ticks()
        start = time.perf_counter()
        await asyncio.gather(*work)
        wall = time.perf_counter() - start - lead  # paced: from the schedule's start
        busy, all_ticks = machine_ticks()
        cpu = {}
        for name, pid in self.pids.items():
            user, system = cpu_seconds(pid)
            cpu[name] = (user - before[name][0], system - before[name][1])
        self.sent += total
        return Round(target.name, clients, latencies, late, wall, cpu,
                     (busy - ticks[0], all_ticks - ticks[1]))


@dataclass(frozen=True)
class Level:
    name: str  # "1", "50 paced", "50": the row label and the summary's key suffix
    clients: int
    requests: int  # per round
    rate: float | None = None  # paced: requests/s per client

    @property
    def key(self) -> str:
        return self.name.replace(" ", "_")

    async def run(self, load: Load, target: Target, seed: int) -> Round:
        if self.rate is None:
            return await load.run(target, self.clients, self.requests)
        return await load.run_paced(target, self.clients, self.rate,
                                    self.requests // self.clients, seed)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


async def measure(load: Load, direct: Target, proxied: Target, levels: list[Level],
                  rounds: int) -> dict[Level, dict[str, list[Round]]]:
    out: dict[Level, dict[str, list[Round]]] = {}
    for level in levels:  # warm-up: caches, the allocator, both servers' accept paths
        if level.rate is None:
            for target in (direct, proxied):
                await load.run(target, level.clients, max(level.clients * 4,
                                                          level.requests // 10))
    for level in levels:
        by_mode: dict[str, list[Round]] = {"direct": [], "proxied": []}
        for i in range(rounds):
            for target in (direct, proxied) if i % 2 == 0 else (proxied, direct):
                by_mode[target.name].append(await level.run(load, target, seed=i))
        out[level] = by_mode
    return out


def start_child(*args: str) -> tuple[subprocess.Popen[str], int, str]:
    """The child, its port, and what it says after it (the proxy: its event loop)."""
    child = subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert child.stdout is not None
    line = child.stdout.readline().split()
    if len(line) < 2 or line[0] != "ready":
        child.kill()
        fail(f"{' '.join(args)} did not start: {line}")
    return child, int(line[1]), " ".join(line[2:])


def finish_child(child: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = child.communicate(timeout=30)
    if child.returncode != 0:
        fail(f"a child process exited {child.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def ask(child: subprocess.Popen[str], command: str, reply: bool) -> dict[str, Any]:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(command + "\n")
    child.stdin.flush()
    return json.loads(child.stdout.readline()) if reply else {}


def fail(message: str) -> None:
    print(f"FAILED: {message}")
    sys.exit(1)


def machine(proxy_loop: str) -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    usable = len(os.sched_getaffinity(0))
    return (f"{platform.machine()}, {model}, nproc {usable} ({os.cpu_count()} CPUs), "
            f"Python {platform.python_version()}, Linux {platform.release()}; event loops: "
            f"origin and load asyncio's selector loop, proxy {proxy_loop}")


def report(results: dict[Level, dict[str, list[Round]]], rounds: int) -> dict[str, Any]:
    print(f"\n{'':56}{'machine':>7}   CPU µs per request, user+sys")
    print(f"{'clients':>9} {'mode':8} {'requests':>8} {'req/s':>6} {'p50 ms':>6} "
          f"{'p90 ms':>6} {'p99 ms':>6} {'busy %':>7}   {'proxy':>9} {'origin':>9} "
          f"{'client':>9}")
    summary: dict[str, Any] = {}
    for level, by_mode in results.items():
        for mode, rs in by_mode.items():
            lat = [x for r in rs for x in r.latencies]
            n = len(lat)
            cpu = {k: [sum(r.cpu_s[k][i] for r in rs) / n * 1e6 for i in (0, 1)]
                   for k in ("proxy", "origin", "client")}
            rate = statistics.median(r.rate for r in rs)
            busy = 100 * sum(r.busy[0] for r in rs) / max(1, sum(r.busy[1] for r in rs))
            print(f"{level.name:>9} {mode:8} {n:8} {rate:6.0f} {pct(lat, 0.5) * 1e3:6.2f} "
                  f"{pct(lat, 0.9) * 1e3:6.2f} {pct(lat, 0.99) * 1e3:6.2f} {busy:7.0f}   "
                  + " ".join(f"{f'{u:.0f}+{s:.0f}':>9}" for u, s in cpu.values()))
            row: dict[str, Any] = {
                "requests_per_s": round(rate), "p50_ms": round(pct(lat, 0.5) * 1e3, 3),
                "p90_ms": round(pct(lat, 0.9) * 1e3, 3), "p99_ms": round(pct(lat, 0.99) * 1e3, 3),
                "machine_busy_pct": round(busy),
                "cpu_us_per_request_user_sys": {k: [round(u), round(s)]
                                                for k, (u, s) in cpu.items()}}
            if level.rate is not None:
                row["late_starts"] = sum(len(r.late) for r in rs)
            summary[f"{mode}_{level.key}"] = row
    print(f"\nper round, paired in order (D/P order flips each round; {rounds} rounds):")
    added: dict[Level, float] = {}
    ratio: dict[Level, float] = {}
    for level, by_mode in results.items():
        pairs = list(zip(by_mode["direct"], by_mode["proxied"], strict=True))
        deltas = [(p.p50 - d.p50) * 1e3 for d, p in pairs]
        ratios = [p.rate / d.rate for d, p in pairs]
        added[level], ratio[level] = statistics.median(deltas), statistics.median(ratios)
        label = f"{level.name} client{'s' if level.clients > 1 else ''}"
        print(f"  {label:16} added p50 ms: {' '.join(f'{x:6.3f}' for x in deltas)}   "
              f"median {added[level]:.3f}")
        if level.rate is None:
            print(f"  {'':16} proxied/direct req/s: "
                  f"{' '.join(f'{x:6.2f}' for x in ratios)}   median {ratio[level]:.2f}")
        else:
            late = {mode: [x for r in rs for x in r.late] for mode, rs in by_mode.items()}
            print(f"  {'':16} open loop at {level.clients} x {level.rate:g} = "
                  f"{level.clients * level.rate:g} req/s offered; late starts (client still "
                  f"busy when due): direct {len(late['direct'])}, proxied "
                  f"{len(late['proxied'])} of {len(by_mode['proxied']) * level.requests}"
                  + (f", at most {max(late['direct'] + late['proxied']) * 1e3:.1f} ms late"
                     if late["direct"] or late["proxied"] else ""))
        summary[f"added_p50_ms_{level.key}"] = round(added[level], 3)
        if level.rate is None:  # paced: both modes run at the offered rate
            summary[f"rate_ratio_{level.key}"] = round(ratio[level], 3)
    closed = [level for level in results if level.rate is None and level.clients > 1]
    for level in closed:  # a closed loop: mean latency = clients / throughput (Little's law)
        little = {mode: level.clients / statistics.median(r.rate for r in rs) * 1e3
                  for mode, rs in results[level].items()}
        print(f"  at {level.clients} saturating clients each client waits for its previous "
              f"answer, so mean latency = clients / req/s: direct {little['direct']:.1f} ms, "
              f"proxied {little['proxied']:.1f} ms;\n  the added latency there is set by the "
              "proxy's throughput (CPU µs per request), not by one request's path")
    return {"summary": summary, "added": added, "ratio": ratio}


def profile_round(load: Load, proxy: subprocess.Popen[str], proxied: Target,
                  clients: int, total: int) -> None:
    ask(proxy, "profile-on", reply=False)
    rnd = asyncio.run(load.run(proxied, clients, total))
    text = ask(proxy, "profile-off", reply=True)["profile"]
    print(f"\ncProfile of the proxy's loop thread, {total} proxied requests at {clients} "
          f"client(s) ({rnd.rate:.0f} req/s under the profiler)")
    print("\n".join(ln for ln in text.splitlines() if ln.strip()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a short run (~10 s)")
    parser.add_argument("--rounds", type=int, help="rounds per mode and level (default 5)")
    parser.add_argument("--requests", type=int,
                        help="requests per round at --clients (default 12000)")
    parser.add_argument("--single", type=int, help="requests per round at 1 client (default 2000)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--paced-rate", type=float, default=10.0,
                        help="open loop: requests/s per client at --clients (default 10)")
    parser.add_argument("--paced-seconds", type=float,
                        help="open loop: seconds per round (default 2, --quick 1)")
    parser.add_argument("--profile", action="store_true",
                        help="then cProfile the proxy over one extra proxied round per level")
    parser.add_argument("--proxy-loop", choices=["default", "asyncio"], default="default",
                        help="the proxy's event loop: ProxySession's choice (uvloop when "
                        "installed), or asyncio's own with uvloop hidden")
    parser.add_argument("--role", choices=["origin", "proxy"], help=argparse.SUPPRESS)
    parser.add_argument("--origin-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "origin":
        asyncio.run(origin_main())
        return
    if args.role == "proxy":
        proxy_main(args.origin_port, args.proxy_loop)
        return
    rounds = args.rounds or (3 if args.quick else 5)
    total = args.requests or (2000 if args.quick else 12000)
    single = args.single or (300 if args.quick else 2000)
    paced_s = args.paced_seconds or (1.0 if args.quick else 2.0)
    per_client = round(args.paced_rate * paced_s)
    if rounds < 1 or total < args.clients or single < 1 or args.clients < 2 or per_client < 1:
        parser.error("--rounds >= 1, --requests >= --clients >= 2, --single >= 1, "
                     "--paced-rate x --paced-seconds >= 1")

    origin, origin_port, _ = start_child("--role", "origin")
    proxy, proxy_port, proxy_loop = start_child("--role", "proxy", "--origin-port",
                                                str(origin_port), "--proxy-loop", args.proxy_loop)
    direct = Target("direct", origin_port,
                    f"GET /x HTTP/1.1\r\nHost: 127.0.0.1:{origin_port}\r\n"
                    "User-Agent: proxy-bench\r\nAccept: */*\r\n\r\n".encode())
    proxied = Target("proxied", proxy_port,
                     f"GET http://{ORIGIN_NAME}:{origin_port}/x HTTP/1.1\r\n"
                     f"Host: {ORIGIN_NAME}:{origin_port}\r\n"
                     "User-Agent: proxy-bench\r\nAccept: */*\r\n\r\n".encode())
    load = Load({"proxy": proxy.pid, "origin": origin.pid, "client": None})
    paced = Level(f"{args.clients} paced", args.clients, args.clients * per_client,
                  args.paced_rate)
    saturating = Level(str(args.clients), args.clients, total)
    levels = [Level("1", 1, single), paced, saturating]

    print("egress proxy: 1 KiB GET, a new TCP connection per request in both modes "
          "(the proxy serves one request per connection)")
    print(f"machine: {machine(proxy_loop)}")
    print(f"origin: asyncio server, own process, 127.0.0.1:{origin_port}, 200 + "
          f"{BODY_BYTES} B body, Connection: close")
    print(f"proxy: ProxySession, own process, 127.0.0.1:{proxy_port}; allow "
          f"{ORIGIN_NAME}:{origin_port}, methods GET/HEAD/OPTIONS, inspect_tls=False, "
          f"hosts {ORIGIN_NAME} -> 127.0.0.1")
    print("       allow_local_hosts=True only because the bench origin is on loopback "
          "(the local-address check is skipped)")
    print(f"load: this process, asyncio clients, D/P interleaved, {rounds} rounds per mode "
          "and level, each round:")
    print(f"  1 client:            {single} requests, one after another (closed loop)")
    print(f"  {args.clients} paced clients:    open loop, each client {args.paced_rate:g} "
          f"req/s on a fixed schedule (random phase) for {paced_s:g} s = "
          f"{args.clients * args.paced_rate:g} req/s, {paced.requests} requests")
    print(f"  {args.clients} saturating clients: {total} requests, each client sending its "
          "next as soon as its answer arrives (closed loop)")
    print("latency: connect start -> last body byte; req/s: median over rounds (paced: the "
          "offered load); percentiles: all of a mode's requests")

    started = time.perf_counter()
    try:
        results = asyncio.run(measure(load, direct, proxied, levels, rounds))
        if not load.failed:
            out = report(results, rounds)
            if args.profile:
                for level in levels:
                    if level.rate is None:
                        profile_round(load, proxy, proxied, level.clients, level.requests)
    finally:
        origin_stats = finish_child(origin)
        proxy_stats = finish_child(proxy)
    elapsed = time.perf_counter() - started

    if load.failed:
        fail(f"{load.failed} request(s) failed, e.g. {load.failures}")
    if proxy_stats["refused"]:
        fail(f"the proxy refused {proxy_stats['refused']} request(s): {proxy_stats['first']}")
    served = sum(len(r.latencies) for by in results.values() for rs in by.values() for r in rs)
    if origin_stats["served"] != load.sent:
        fail(f"the origin served {origin_stats['served']} requests, the clients sent "
             f"{load.sent}")
    print(f"\nchecks: {load.sent} requests (warm-up included), every one 200 with a "
          f"{BODY_BYTES}-byte body; origin served {origin_stats['served']}; proxy refused "
          f"0; {served} measured; {elapsed:.1f} s")
    print(json.dumps(out["summary"]))
    verdicts = []
    for level, label in ((levels[0], "1 client"), (paced, f"{args.clients} paced clients"),
                         (saturating, f"{args.clients} saturating clients")):
        added = out["added"][level]
        verdict = "met" if added <= TARGET_ADDED_P50_MS else "NOT met"
        verdicts.append(f"{added:.2f} ms at {label} ({verdict})")
    print(f"added p50 latency (target ≤ {TARGET_ADDED_P50_MS:g} ms): {', '.join(verdicts)}; "
          f"proxied/direct req/s at {args.clients} saturating clients "
          f"{out['ratio'][saturating]:.2f} (no target)")

if __name__ == "__main__":
    main()
