"""Session overhead, measured side by side in one run (issue 20; never asserted in tests).

    .venv/bin/python bench/session_overhead.py [--rounds 15] [--backends native,docker,podman]
                                               [--profile workspace] [--start-runs 3]

One session per backend is started (Python API, profile `workspace` unless --profile)
and kept for the whole run; then every contender below runs once per round, in an order
that rotates each round (none always first or after the same neighbour), after one
warm-up each:
  native  codex-box exec -s ID -- true              the CLI, into the running native session
          codex-box run --backend native -- true    a one-shot run, same profile and workspace
          Session.exec(["true"])                    the Python API, warm, in this process
          bwrap --ro-bind / / --dev /dev --proc /proc --unshare-all true
                                                    a peer sandbox (as launch_overhead.py)
  docker  codex-box exec -s ID -- true              into the docker session's container
          Session.exec(["true"])                    the same, from the Python API
          docker exec -i -u U:G RAW true            RAW: a plain long-lived container of the
                                                    session's image (docker run -d --init
                                                    --network none IMAGE sleep), the
                                                    session's user, stdin attached as ours is
  podman  the same three against the API service (podman --remote --url SOCKET exec), and
          the local `podman exec` (the CLI as the engine; reported, not a target)
Then `codex-box session start` and `codex-box session stop` are timed separately per
backend (--start-runs each, rotating over backends).

Printed: medians and p90 per contender, the issue-20 targets (median of per-round
ratios) as met / NOT met, and the start / stop costs. A backend whose engine, image or
session cannot start is skipped with one line saying why. Everything made here (sessions,
the raw containers, the temporary CODEX_HOME and workspace) is removed at the end, also
on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from launch_overhead import timed

VENV_BIN = Path(sys.executable).parent
CODEX_BOX = str(VENV_BIN / "codex-box")
BACKENDS = ("native", "docker", "podman")
BWRAP = "bwrap --unshare-all true"
SLEEP_S = "86400"  # the raw containers' lifetime, should this script be SIGKILLed


def cli_exec(backend: str) -> str:
    return f"{backend}: codex-box exec -s ID -- true"


def api_exec(backend: str) -> str:
    return f"{backend}: Session.exec(['true'])"


NATIVE_RUN = "native: codex-box run -- true (one-shot)"
RAW = {"docker": "docker: docker exec -i RAW true",
       "podman": "podman: podman --remote exec -i RAW true"}
PODMAN_LOCAL = "podman: podman exec -i RAW true (local CLI)"


class Bench:
    """What one run made, so that ``close`` can remove all of it."""

    def __init__(self, profile: str) -> None:
        self.profile = profile
        self.home = Path(tempfile.mkdtemp(prefix="codex-box-bench-"))
        self.workspace = self.home / "ws"
        self.workspace.mkdir()
        self.env = {"PATH": os.environ["PATH"], "HOME": str(self.home),
                    "CODEX_HOME": str(self.home / ".codex")}
        for key in ("DOCKER_HOST", "CONTAINER_HOST", "PYTHONPATH"):
            if key in os.environ:
                self.env[key] = os.environ[key]
        self.devnull = os.open(os.devnull, os.O_RDWR)
        self.sessions: list[Any] = []  # orchestrator.Session
        self.containers: list[list[str]] = []  # argv removing each raw container
        self.contenders: dict[str, Callable[[], object]] = {}
        self.skipped: list[str] = []
        self.notes: list[str] = []

    # --- helpers ----------------------------------------------------------------------

    def sh(self, argv: list[str]) -> Callable[[], object]:
        return lambda: subprocess.run(argv, cwd=self.workspace, env=self.env, check=True,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def out(self, argv: list[str]) -> str:
        return subprocess.run(argv, cwd=self.workspace, env=self.env, check=True,
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True).stdout.strip()

    def start_session(self, backend: str) -> Any:
        from orchestrator import Session

        session = Session.start(profile=self.profile, backend=backend, workspace=self.workspace,
                                environ=self.env, cwd=str(self.workspace))
        self.sessions.append(session)
        return session

    def api(self, session: Any) -> Callable[[], object]:
        stdio = (self.devnull, self.devnull, self.devnull)

        def run() -> None:
            result = session.exec(["true"], stdio=stdio)
            if result.exit_code != 0:
                raise RuntimeError(f"Session.exec(['true']) exited {result.exit_code}")
        return run

    def raw_container(self, engine: list[str], engine_name: str, session_id: str,
                      extra: tuple[str, ...] = ()) -> list[str]:
        """A plain container of the session container's image, kept like it; returns the
        ``exec`` argv (the session's user, stdin attached)."""
        found = self.out([*engine, "ps", "-q", "--filter", f"label=codex-box.session={session_id}",
                          "--filter", "label=codex-box.role=session"])  # not a network holder
        if not found or "\n" in found:
            raise RuntimeError(f"expected one container labelled with the session, got {found!r}")
        image, user = self.out([*engine, "inspect", "-f", "{{.Config.Image}}\t{{.Config.User}}",
                                found]).split("\t")
        name = f"codex-box-bench-{os.getpid()}-{engine_name}"
        self.containers.append([*engine, "rm", "-f", name])
        try:
            self.out([*engine, "run", "-d", "--rm", "--init", "--network", "none", "--name", name,
                      "--label", "codex-box-bench=1", *extra, "--entrypoint", "", image, "sleep",
                      SLEEP_S])
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"the raw container did not start: {exc.stderr.strip()}") from None
        self.notes.append(f"{engine_name} raw container: {image}, exec as user "
                          f"{user or '(image default)'}")
        return [*engine, "exec", "-i", *(["-u", user] if user else []), name, "true"]

    # --- backends -----------------------------------------------------------------------

    def native(self) -> None:
        session = self.start_session("native")
        self.contenders[cli_exec("native")] = self.sh([CODEX_BOX, "exec", "-s", session.id,
                                                       "--", "true"])
        self.contenders[NATIVE_RUN] = self.sh([CODEX_BOX, "run", "--profile", self.profile,
                                               "--backend", "native", "--", "true"])
        self.contenders[api_exec("native")] = self.api(session)
        if bwrap := shutil.which("bwrap"):
            self.contenders[BWRAP] = self.sh([bwrap, "--ro-bind", "/", "/", "--dev", "/dev",
                                              "--proc", "/proc", "--unshare-all", "true"])
        else:
            self.skipped.append("bwrap: not installed (apt-get install bubblewrap)")

    def docker(self) -> None:
        if not shutil.which("docker"):
            raise RuntimeError("no docker CLI")
        self.out(["docker", "version", "-f", "{{.Server.Version}}"])
        session = self.start_session("docker")
        raw = self.raw_container(["docker"], "docker", session.id)
        self.contenders[cli_exec("docker")] = self.sh([CODEX_BOX, "exec", "-s", session.id,
                                                       "--", "true"])
        self.contenders[api_exec("docker")] = self.api(session)
        self.contenders[RAW["docker"]] = self.sh(raw)

    def podman(self) -> None:
        from orchestrator.core.spec import DEFAULT_PODMAN_HOST

        if not shutil.which("podman"):
            raise RuntimeError("no podman CLI")
        url = self.env.get("CONTAINER_HOST", DEFAULT_PODMAN_HOST)
        remote = ["podman", "--remote", "--url", url]
        version = json.loads(self.out([*remote, "version", "-f", "json"]))
        # This host's OCI runtime may not raise rlimits: the service's own hard limits,
        # as the backend itself passes them (podman_overhead.py does the same).
        from orchestrator.backends.podman.host import probe

        host = probe(url)
        runtime = host.runtime_choice()
        extra = (*(f"--ulimit={u['Name']}={u['Soft']}:{u['Hard']}" for u in host.ulimits()),
                 *(["--runtime", runtime] if runtime else []))
        session = self.start_session("podman")
        raw = self.raw_container(remote, "podman", session.id, extra)
        self.contenders[cli_exec("podman")] = self.sh([CODEX_BOX, "exec", "-s", session.id,
                                                       "--", "true"])
        self.contenders[api_exec("podman")] = self.api(session)
        self.contenders[RAW["podman"]] = self.sh(raw)
        self.contenders[PODMAN_LOCAL] = self.sh(["podman", *raw[len(remote):]])
        self.notes.append(f"podman raw side: podman {version['Client']['Version']} --remote "
                          f"--url {url} (service {version['Server']['Version']}); local: the "
                          "same container through the podman CLI itself")

    # --- start / stop ---------------------------------------------------------------------

    def start_stop(self, backends: list[str], runs: int) -> dict[str, dict[str, list[float]]]:
        """``session start`` and ``session stop`` through the CLI, each timed alone."""
        times = {b: {"start": [], "stop": []} for b in backends}
        for i in range(runs):
            for backend in backends[i % len(backends):] + backends[:i % len(backends)]:
                argv = [CODEX_BOX, "session", "start", "--profile", self.profile,
                        "--backend", backend, "--workspace", str(self.workspace)]
                ids: list[str] = []

                def start(argv: list[str] = argv, ids: list[str] = ids) -> None:
                    ids.append(self.out(argv))

                times[backend]["start"].append(timed(start))
                times[backend]["stop"].append(timed(self.sh([CODEX_BOX, "session", "stop",
                                                             ids[0]])))
        return times

    def close(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C: cleanup goes on
            signal.signal(signum, signal.SIG_IGN)
        for session in self.sessions:
            with contextlib.suppress(Exception):
                session.stop()
        # Also any `session start` of start_stop() interrupted before its id was read.
        subprocess.run([CODEX_BOX, "session", "stop", "--all"], cwd=self.workspace,
                       env=self.env, check=False, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for argv in self.containers:
            subprocess.run(argv, check=False, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(self.devnull)
        shutil.rmtree(self.home, ignore_errors=True)


def rounds(contenders: dict[str, Callable[[], object]], count: int) -> dict[str, list[float]]:
    for fn in contenders.values():  # warm-up: page cache, policy cache, engine caches
        fn()
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(count):
        for name in names[i % len(names):] + names[:i % len(names)]:
            times[name].append(timed(contenders[name]))
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated, of native,docker,podman")
    parser.add_argument("--profile", default="workspace",
                        help="the profile of both sides of every comparison")
    parser.add_argument("--start-runs", type=int, default=3,
                        help="session start + stop cycles timed per backend")
    args = parser.parse_args()
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    if unknown := set(wanted) - set(BACKENDS):
        parser.error(f"unknown backends {sorted(unknown)}")

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    bench = Bench(args.profile)
    try:
        from orchestrator.core.errors import CodexBoxError

        measured: list[str] = []
        for backend in wanted:
            try:
                getattr(bench, backend)()
                measured.append(backend)
            except (CodexBoxError, RuntimeError, OSError, subprocess.CalledProcessError) as exc:
                if isinstance(exc, subprocess.CalledProcessError):
                    if exc.returncode < 0 or exc.returncode == 128 + signal.SIGINT:
                        raise KeyboardInterrupt from exc  # a signal, not a missing engine
                    why = exc.stderr or str(exc)
                else:
                    why = str(exc)
                first = (why.strip().splitlines() or [type(exc).__name__])[0]
                bench.skipped.append(f"{backend}: skipped, {first}")
        report(bench, measured, args)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the sessions, removing the raw containers", file=sys.stderr)
        sys.exit(130)
    finally:
        bench.close()


def report(bench: Bench, measured: list[str], args: argparse.Namespace) -> None:
    times = rounds(bench.contenders, args.rounds) if bench.contenders else {}
    print(f"\nprofile {bench.profile} on both sides; median of {args.rounds} rotating rounds, "
          f"one warm-up each; {os.uname().machine}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    for line in bench.skipped:
        print(f"  {line}")
    for line in bench.notes:
        print(f"  {line}")
    results: dict[str, Any] = {"profile": bench.profile}
    med: dict[str, float] = {}
    if times:
        print(f"{'contender':52} {'median ms':>10} {'p90 ms':>8}")
    for name, values in times.items():
        med[name] = statistics.median(values) * 1000
        p90 = sorted(values)[int(0.9 * (len(values) - 1))] * 1000
        results[name] = {"median_ms": round(med[name], 1), "p90_ms": round(p90, 1)}
        print(f"{name:52} {med[name]:10.1f} {p90:8.1f}")

    def ratio(name: str, peer: str) -> float:
        return statistics.median(a / b for a, b in zip(times[name], times[peer], strict=True))

    def target(label: str, name: str, peer: str, limit: float, also: float | None = None) -> None:
        value = ratio(name, peer)
        verdict = "met" if value <= limit else "NOT met"
        extra = ""
        if also is not None:
            extra = f"; moonshot <= {also:g}x: {'met' if value <= also else 'NOT met'}"
        print(f"  {label:52} {value:6.2f}x  target <= {limit:g}x: {verdict}{extra}")
        results[label] = round(value, 2)

    if times:
        print("\ntargets (issue 20; median of per-round ratios):")
    if "native" in measured:
        target("native: CLI exec / one-shot CLI run", cli_exec("native"), NATIVE_RUN, 0.6)
        if BWRAP in times:
            target("native: Session.exec / bwrap", api_exec("native"), BWRAP, 2, also=1)
    for engine in ("docker", "podman"):
        if engine in measured:
            target(f"{engine}: CLI exec / raw {engine} exec", cli_exec(engine), RAW[engine], 1.2)
            value = ratio(api_exec(engine), RAW[engine])
            print(f"  {engine + ': Session.exec / raw ' + engine + ' exec':52} {value:6.2f}x  "
                  "(reported, not a target)")
            results[f"{engine}: Session.exec / raw"] = round(value, 2)
    if "podman" in measured:
        value = ratio(cli_exec("podman"), PODMAN_LOCAL)
        print(f"  {'podman: CLI exec / local podman exec':52} {value:6.2f}x  "
              "(reported, not a target)")

    if measured and args.start_runs > 0:
        costs = bench.start_stop(measured, args.start_runs)
        print(f"\nsession start / stop through the CLI (median of {args.start_runs}, "
              "each timed alone):")
        for backend, spans in costs.items():
            start, stop = (statistics.median(spans[k]) * 1000 for k in ("start", "stop"))
            print(f"  {backend:8} start {start:8.1f} ms   stop {stop:8.1f} ms")
            results[f"{backend}: session start ms"] = round(start, 1)
            results[f"{backend}: session stop ms"] = round(stop, 1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
