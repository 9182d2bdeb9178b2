"""Shared by the engine benchmarks (docker_overhead.py, podman_overhead.py): timing
commands in rotating rounds, import costs, the engine round trips of a raw CLI (through
a counting proxy) and of codex-box (an instrumented run of its real entry point)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TARGET = 1.3  # issue 19: each engine backend ≤ 1.3x its raw engine


def timed(argv: list[str], **kw: Any) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - start


def import_ms(module: str, env: dict[str, str] | None = None) -> float:
    """Cumulative ``-X importtime`` of ``module`` imported alone (median of 3)."""
    values = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                             capture_output=True, text=True, check=True, env=env).stderr
        match = re.search(rf"\|\s+(\d+) \| {re.escape(module)}\n", out)
        values.append(int(match.group(1)) / 1000 if match else float("nan"))
    return statistics.median(values)


def python_startup_ms() -> float:
    return statistics.median(timed([sys.executable, "-c", "pass"]) for _ in range(10)) * 1000


def verdict(ratio: float) -> str:
    return f"{'met' if ratio <= TARGET else 'NOT met'} (target <= {TARGET})"


@dataclass
class Rounds:
    """Commands timed in rounds whose order rotates (none always runs first, after the
    same neighbour); ratios are medians of the per-round ratios."""

    times: dict[str, list[float]] = field(default_factory=dict)

    def run(self, commands: dict[str, tuple[list[str], dict[str, str]]], rounds: int,
            **kw: Any) -> None:
        for argv, env in commands.values():
            timed(argv, env=env, **kw)  # warm-up: page cache, engine caches
        names = list(commands)
        for i in range(rounds):
            for name in names[i % len(names):] + names[:i % len(names)]:
                argv, env = commands[name]
                self.times.setdefault(name, []).append(timed(argv, env=env, **kw))

    def median_ms(self, name: str) -> float:
        return statistics.median(self.times[name]) * 1000

    def ratio(self, name: str, peer: str) -> float:
        pairs = zip(self.times[name], self.times[peer], strict=True)
        return statistics.median(a / b for a, b in pairs)


# --- round trips of a raw CLI -------------------------------------------------------------

_REQUEST = re.compile(rb"(?:^|\r\n)(GET|HEAD|POST|PUT|DELETE) (/\S*) HTTP/1\.[01]\r\n")


def shape(path: str) -> str:
    """A request path with its query, API version and container ids elided."""
    path = re.sub(r"^/v[0-9.]+/", "/", path.split("?")[0])
    return re.sub(r"[0-9a-f]{32,}", "{id}", path)


class CountingProxy:
    """A unix socket forwarding to an engine's, noting each HTTP request it carries."""

    def __init__(self, target: str, path: str) -> None:
        self.target = target
        self.seen: list[str] = []
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX)
        self._server.bind(path)
        self._server.listen(64)
        self.url = f"unix://{path}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, requests: bool) -> None:
        try:
            while data := src.recv(65536):
                if requests:
                    with self._lock:
                        self.seen += [f"{m[1].decode()} {shape(m[2].decode())}"
                                      for m in _REQUEST.finditer(data)]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (dst, src):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def raw_round_trips(argv: list[str], engine_socket: str, url_option: list[str],
                    **kw: Any) -> list[str]:
    """The requests ``argv`` (an engine CLI, ``url_option`` + the proxy's URL inserted
    after its name) sends to the engine at ``engine_socket``."""
    workdir = tempfile.mkdtemp(prefix="cb-proxy-", dir="/tmp")
    proxy = CountingProxy(engine_socket, os.path.join(workdir, "engine.sock"))
    try:
        timed([argv[0], *url_option, proxy.url, *argv[1:]], **kw)
        time.sleep(0.2)  # the last answer forwarded
        return list(proxy.seen)
    finally:
        proxy.close()
        subprocess.run(["rm", "-rf", workdir], check=False)


# --- one instrumented codex-box run ------------------------------------------------------

# Runs codex-box's real entry point in a child, with every request to an engine noted
# where any HTTP client writes it (socket.sendall: our client and podman-py alike), and
# the backend's import, probe and run timed; writes JSON when the process leaves.
_CHILD = r"""
import importlib, json, os, re, socket, sys, time
clock = time.perf_counter
begun = clock()
out, module, cls_name, argv = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
REQUEST = re.compile(rb"(GET|HEAD|POST|PUT|DELETE) (/\S*) HTTP/1\.[01]\r\n")
sent, steps, calls = [], {}, []
real_sendall = socket.socket.sendall

def shape(path):
    path = re.sub(r"^/v[0-9.]+/", "/", path.split("?")[0])
    return re.sub(r"[0-9a-f]{32,}", "{id}", path)

def sendall(self, data, *args):
    match = REQUEST.match(bytes(data[:1024]))
    if match:
        sent.append(match[1].decode() + " " + shape(match[2].decode()))
    return real_sendall(self, data, *args)

def timing(fn, name):
    def timed(*args, **kwargs):
        start = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            steps[name] = steps.get(name, 0.0) + clock() - start
    return timed

def per_call(api):
    # New client only: each request from send to its whole answer.
    if not hasattr(api.Endpoint, "send"):
        return
    send, response, hijack = api.Endpoint.send, api.Pending.response, api.Endpoint.hijack
    def sending(self, method, path, *a, **k):
        pending = send(self, method, path, *a, **k)
        pending._bench = (method + " " + shape(path), clock())
        return pending
    def answered(self, *a, **k):
        result = response(self, *a, **k)
        calls.append((self._bench[0], clock() - self._bench[1]))
        return result
    def hijacking(self, path):
        start = clock()
        sock = hijack(self, path)
        calls.append(("POST " + shape(path), clock() - start))
        return sock
    api.Endpoint.send, api.Pending.response, api.Endpoint.hijack = sending, answered, hijacking

real_import = importlib.import_module

def import_module(name, package=None):
    if name != module or name in sys.modules:
        return real_import(name, package)
    start = clock()
    loaded = real_import(name, package)
    steps["backend import"] = clock() - start
    cls = getattr(loaded, cls_name)
    cls.probe, cls.run = timing(cls.probe, "backend probe"), timing(cls.run, "backend run")
    per_call(sys.modules["orchestrator.backends.containers.engine_api"])
    return loaded

def leave(code):
    sdks = sorted(m for m in ("podman", "docker", "requests") if m in sys.modules)
    with open(out, "w") as handle:
        json.dump({"code": code, "sent": sent, "steps": steps, "calls": calls, "sdks": sdks,
                   "in_process": clock() - begun}, handle)
    real_exit(code)

socket.socket.sendall, importlib.import_module = sendall, import_module
real_exit, os._exit = os._exit, leave
sys.argv = ["codex-box", *argv]
from orchestrator.cli.app import main
main()
leave(0)
"""


@dataclass
class Profile:
    """Medians over instrumented runs (seconds), and one run's requests."""

    wall: float
    raw: float  # the raw command, timed right after each instrumented run
    steps: dict[str, float]
    calls: dict[str, float]
    sent: list[str]
    sdks: list[str]


def instrumented(args: list[str], backend: tuple[str, str], runs: int, *, env: dict[str, str],
                 cwd: Path, raw: list[str]) -> Profile:
    """``runs`` child processes each running ``codex-box ARGS`` once, instrumented, each
    followed by the ``raw`` command; ``backend``: (module, class) whose import, probe and
    run are timed."""
    walls: list[float] = []
    raws: list[float] = []
    steps: dict[str, list[float]] = {}
    calls: dict[str, list[float]] = {}
    last: dict[str, Any] = {}
    for _ in range(runs):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", _CHILD, out.name, *backend, *args], cwd=cwd,
                           env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           check=True)
            walls.append(time.perf_counter() - start)
            last = json.loads(Path(out.name).read_text())
        raws.append(timed(raw, env=env, cwd=cwd, stdin=subprocess.DEVNULL))
        if last["code"] != 0:
            sys.exit(f"the instrumented codex-box run exited {last['code']}")
        for name, seconds in last["steps"].items():
            steps.setdefault(name, []).append(seconds)
        seen: dict[str, float] = {}
        for name, seconds in last["calls"]:
            seen[name] = seen.get(name, 0.0) + seconds
        for name, seconds in seen.items():
            calls.setdefault(name, []).append(seconds)
    return Profile(
        wall=statistics.median(walls),
        raw=statistics.median(raws),
        steps={k: statistics.median(v) for k, v in steps.items()},
        calls={k: statistics.median(v) for k, v in calls.items()},
        sent=last["sent"],
        sdks=last["sdks"],
    )


def print_profile(title: str, profile: Profile, raw_name: str, startup_ms: float) -> None:
    """Where one run's time goes, and the gap to ``raw_ms`` split between the CLI
    (interpreter, imports, policy, audit: everything outside the backend) and the
    backend (its import, probe, and its run beyond what the raw command takes)."""
    ms = {k: v * 1000 for k, v in profile.steps.items()}
    wall, raw_ms = profile.wall * 1000, profile.raw * 1000
    backend = sum(ms.values())
    print(f"{title} (medians of instrumented runs, each followed by the raw command):")
    print(f"  child process, wall                      {wall:7.1f} ms")
    print(f"    python start-up (python -c pass)       {startup_ms:7.1f} ms")
    print(f"    CLI: imports, policy, audit, runner    {wall - startup_ms - backend:7.1f} ms")
    for name in ("backend import", "backend probe", "backend run"):
        print(f"    {name + ' (in the run)':39}{ms.get(name, 0.0):7.1f} ms")
    for name, seconds in profile.calls.items():  # overlapping: a held wait spans start
        print(f"      {name:37}{seconds * 1000:7.1f} ms")
    print(f"  {raw_name:39}{raw_ms:7.1f} ms")
    print(f"  engine SDK modules imported: {', '.join(profile.sdks) or 'none'}")
    # The gap splits exactly: the CLI's share is all the time outside the backend; the
    # backend's is its own time beyond the raw command's whole time.
    print(f"  gap to {raw_name}: {wall - raw_ms:+.1f} ms = CLI (all outside the backend) "
          f"{wall - backend:+.1f} ms + backend (import + probe + run - {raw_name}) "
          f"{backend - raw_ms:+.1f} ms")


def profiled(args: list[str], backend: tuple[str, str], runs: int, *, env: dict[str, str],
             cwd: Path, raw: list[str], baseline: Path | None) -> dict[str, Profile]:
    """``instrumented`` for our checkout, and for ``baseline`` (PYTHONPATH) when given."""
    profiles = {"ours": instrumented(args, backend, runs, env=env, cwd=cwd, raw=raw)}
    if baseline:
        profiles["baseline"] = instrumented(args, backend, runs, cwd=cwd, raw=raw,
                                            env={**env, "PYTHONPATH": str(baseline.resolve())})
    return profiles


def print_round_trips(profiles: dict[str, Profile], raw_label: str, raw_sent: list[str]) -> None:
    print("engine round trips per run:")
    for name, profile in profiles.items():
        print(f"  codex-box{' (baseline)' if name == 'baseline' else ''} {len(profile.sent):2}: "
              f"{', '.join(profile.sent)}")
    print(f"  {raw_label} {len(raw_sent):2}: {', '.join(raw_sent)}")


def printed_request(codex_box: Path, args: list[str], workspace: Path,
                    env: dict[str, str]) -> dict[str, Any]:
    """The request codex-box would send for ``codex-box ARGS`` (``--print-spec``): what the
    raw command is derived from. ``args`` ends with ``-- true``."""
    argv = [str(codex_box), *args[:-2], "--print-spec", "--", "true"]
    out = subprocess.run(argv, cwd=workspace, env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)["request"]  # type: ignore[no-any-return]
