"""`codex-box serve` under load: N concurrent runs, mixed native and Docker, then nothing left.

    .venv/bin/python bench/serve_load.py [--runs 50] [--docker-share 0.3] [--keep]

Starts a server (its own CODEX_HOME and workspaces, a warm pool `offline/native` = 4),
sends --runs requests at once (each its own thread and connection): a share of them
on Docker (when the engine answers), the rest native, cold runs in their own workspace
and pooled claims alternating; each command exits with its own code (`exit N`), which
must come back. Then the server is stopped with SIGTERM and the host is searched for
anything left: processes carrying the test's CODEX_HOME, containers created after the
start, codex-box cgroups, mounts naming the workspaces, the server's records, pool and
scratch directories, sessions, workspace placeholders; `audit verify` must pass and the
log must hold exactly the records the runs imply (each run: one decision and one end).

Printed: failures, wrong exit codes, latency p50/p99 per backend, leftovers, the audit
count. Exit 1 if anything is wrong. `tests/integration/test_serve_load.py` runs it,
bounded, in the suite.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator.client import Client, ServerError  # noqa: E402

CODEX_BOX = str(Path(sys.executable).parent / "codex-box")


def docker_ready() -> bool:
    if not shutil.which("docker"):
        return False
    probe = subprocess.run(
        ["docker", "image", "inspect", "codex-box/base"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return probe.returncode == 0


def containers() -> set[str]:
    if not shutil.which("docker"):
        return set()
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=codex-box.session"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    return set(out.split())


def _labelled(container: str, ours: set[str]) -> bool:
    """Whether a container carries one of our session or run ids (codex-box's labels)."""
    out = subprocess.run(
        [
            "docker",
            "inspect",
            "-f",
            '{{index .Config.Labels "codex-box.session"}} {{index .Config.Labels "codex-box.run"}}',
            container,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    return bool(set(out.split()) & ours)


def cgroups() -> set[str]:
    """The run cgroups under each ``codex-box`` parent our cgroup could have made."""
    root, found = Path("/sys/fs/cgroup"), set()
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        names = [""] if controllers == "" else controllers.split(",")
        for name in names:
            parent = root / name / path.lstrip("/") / "codex-box"
            if parent.is_dir():
                found |= {str(c) for c in parent.iterdir() if c.is_dir()}
    return found


def processes_carrying(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                    if state != "Z":
                        found.append(int(entry.name))
            except OSError:
                pass
    return found


class Server:
    def __init__(self, root: Path, pools: dict[str, int], max_concurrent: int) -> None:
        self.root = root
        self.home = root / "home"
        self.codex_home = self.home / ".codex"
        self.workspaces = root / "serve-workspaces"
        self.codex_home.mkdir(parents=True)
        lines = [
            "[policy]",
            'mode = "audit-only"',
            "",
            "[serve]",
            f'workspaces = "{self.workspaces}"',
            f"max_concurrent = {max_concurrent}",
            "max_queue = 256",
            "",
            "[serve.pools]",
        ]
        lines += [f'"{key}" = {size}' for key, size in pools.items()]
        (self.codex_home / "config.toml").write_text("\n".join(lines) + "\n")
        self.env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
        self.env.update(HOME=str(self.home), CODEX_HOME=str(self.codex_home))
        self.log = root / "serve.log"
        with open(self.log, "wb") as sink:
            self.process = subprocess.Popen(
                [CODEX_BOX, "serve"],
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.address = f"unix:{self.codex_home / 'serve.sock'}"

    def client(self) -> Client:
        return Client(self.address, timeout=300, environ=self.env)

    def wait_ready(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"serve exited:\n{self.log.read_text()}")
            try:
                pools = self.client().health()["pools"].values()
                if all(p["ready"] >= p["size"] for p in pools):
                    return
            except (ServerError, OSError):
                pass
            time.sleep(0.1)
        raise SystemExit(f"serve not ready:\n{self.log.read_text()}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def audit(self) -> list[dict[str, Any]]:
        log = self.codex_home / "audit.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def plan(runs: int, docker_share: float, docker: bool) -> list[dict[str, Any]]:
    """Each request: its backend, whether it names a workspace (cold) or not (a pool
    claim for native), and the exit code it must come back with."""
    wanted = []
    for i in range(runs):
        on_docker = docker and i % max(1, round(1 / docker_share)) == 0 if docker_share else False
        wanted.append(
            {
                "backend": "docker" if on_docker else "native",
                "cold": i % 2 == 0 or on_docker,
                "exit": i % 100,
            }
        )
    return wanted


def run_load(server: Server, runs: int, docker_share: float, docker: bool) -> dict[str, Any]:
    wanted = plan(runs, docker_share, docker)
    api = server.client()
    workspaces = server.root / "projects"
    start = threading.Barrier(len(wanted))

    def one(index: int, item: dict[str, Any]) -> tuple[int, dict[str, Any], float, str]:
        fields: dict[str, Any] = {"profile": "offline", "backend": item["backend"]}
        if item["cold"]:
            workspace = workspaces / str(index)
            workspace.mkdir(parents=True)
            fields["workspace"] = str(workspace)
        start.wait(timeout=120)
        began = time.monotonic()
        try:
            result = api.run(["sh", "-c", f"echo run {index}; exit {item['exit']}"], **fields)
        except ServerError as exc:
            return index, item, time.monotonic() - began, f"error: {exc.one_line()}"
        took = time.monotonic() - began
        if result.exit_code != item["exit"] or result.stdout != f"run {index}\n":
            return index, item, took, f"got exit {result.exit_code} {result.stdout!r}"
        return index, item, took, ""

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        done = list(pool.map(lambda pair: one(*pair), enumerate(wanted)))
    latency: dict[str, list[float]] = collections.defaultdict(list)
    for _, item, took, _ in done:
        latency[item["backend"]].append(took * 1000)
    return {
        "runs": len(done),
        "failures": [
            f"run {i} ({item['backend']}): {problem}" for i, item, _, problem in done if problem
        ],
        "latency_ms": {
            backend: {
                "p50": statistics.median(v),
                "p99": sorted(v)[max(0, int(len(v) * 0.99) - 1)],
                "n": len(v),
            }
            for backend, v in latency.items()
        },
    }


def leftovers(server: Server, before: dict[str, set[str]]) -> list[str]:
    # Ours only: other suites may run beside this one (pytest-xdist), and their runs'
    # cgroups and containers come and go. A run cgroup is named PID-RUNID; ours are the
    # run and session ids of this server's audit log.
    ours = {str(r.get(k)) for r in server.audit() for k in ("run_id", "session_id") if r.get(k)}
    found = [f"process {p}" for p in processes_carrying(str(server.codex_home))]
    found += [f"container {c}" for c in containers() - before["containers"] if _labelled(c, ours)]
    found += [f"cgroup {c}" for c in cgroups() - before["cgroups"] if c.rsplit("-", 1)[-1] in ours]
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    found += [f"mount {m}" for m in mounts if str(server.root) in m]
    if (server.codex_home / "serve.sock").exists():
        found.append("the socket")
    owned = server.codex_home / "serve" / "owned"
    found += [f"record {p.name}" for p in owned.glob("*")] if owned.is_dir() else []
    if server.workspaces.is_dir():
        found += [f"pool/scratch dir {p.name}" for p in server.workspaces.iterdir()]
    sessions = server.codex_home / "sessions"
    if sessions.is_dir():
        found += [f"session {p.name}" for p in sessions.iterdir() if not p.name.startswith(".")]
    projects = server.root / "projects"
    if projects.is_dir():  # a placeholder codex-box made in a workspace and left
        found += [f"placeholder {p}" for w in projects.iterdir() for p in w.iterdir()]
    return found


def audit_problems(server: Server, results: dict[str, Any]) -> list[str]:
    verify = subprocess.run(
        [CODEX_BOX, "audit", "verify", "--json"],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    problems = [] if verify.returncode == 0 else [f"audit verify: {verify.stdout}{verify.stderr}"]
    records = server.audit()
    ended = [
        r for r in records if r.get("operation") == "command_exec" and r.get("phase") == "ended"
    ]
    decided = [
        r for r in records if r.get("operation") == "command_exec" and r.get("phase") == "decided"
    ]
    if len(ended) != results["runs"] or len(decided) != results["runs"]:
        problems.append(
            f"{len(decided)} decisions and {len(ended)} ends for {results['runs']} runs"
        )
    starts = [r for r in records if r.get("operation") == "session_start"]
    stops = [r for r in records if r.get("operation") == "session_stop"]
    if len(starts) != len(stops):
        problems.append(f"{len(starts)} session starts but {len(stops)} stops")
    results["audit_records"] = len(records)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--docker-share", type=float, default=0.3)
    parser.add_argument("--max-concurrent", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    docker = args.docker_share > 0 and docker_ready()
    root = Path(tempfile.mkdtemp(prefix="codex-box-serve-load-", dir="/var/tmp"))
    before = {"containers": containers(), "cgroups": cgroups()}
    server = Server(root, {"offline/native": 4}, args.max_concurrent)
    try:
        server.wait_ready()
        began = time.monotonic()
        results = run_load(server, args.runs, args.docker_share, docker)
        wall = time.monotonic() - began
    finally:
        status = server.stop()
    left = leftovers(server, before)
    audit = audit_problems(server, results)
    print(
        f"serve under load: {results['runs']} concurrent runs in {wall:.1f} s "
        f"({'native + docker' if docker else 'native only: no docker engine/image'}), "
        f"server exit {status}"
    )
    for backend, lat in sorted(results["latency_ms"].items()):
        print(f"  {backend:6} n={lat['n']:3}  p50 {lat['p50']:7.1f} ms  p99 {lat['p99']:7.1f} ms")
    print(f"  failures: {len(results['failures'])}")
    for failure in results["failures"]:
        print(f"    {failure}")
    print(f"  leftovers on the host: {len(left)}")
    for item in left:
        print(f"    {item}")
    print(
        f"  audit: {results['audit_records']} records, "
        f"{'verified, as expected' if not audit else '; '.join(audit)}"
    )
    if not args.keep:
        subprocess.run(
            [CODEX_BOX, "gc"], env=server.env, capture_output=True, timeout=300, check=False
        )
        shutil.rmtree(root, ignore_errors=True)
    ok = status == 0 and not results["failures"] and not left and not audit
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
