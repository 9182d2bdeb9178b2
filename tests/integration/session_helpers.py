"""What the session tests share: starting sessions through the CLI (each stopped after
its test, its keeper killed if it would not stop), reading a session's state, and
looking on the host for anything a session left (processes, containers, cgroups,
mounts, its directory, workspace placeholders)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.procs import processes_with

ENGINE_CLI = {"docker": ["docker"], "podman": ["podman", "--remote"]}


def state_of(codex_home: Path, session_id: str) -> dict[str, Any]:
    return json.loads((codex_home / "sessions" / session_id / "state.json").read_text())


def sleeper(seconds: int) -> str:
    """The host-visible command line of ``sleep SECONDS`` (a duration no other test uses)."""
    return f"sleep\0{seconds}\0"


def unique_seconds() -> int:
    return 3000 + int.from_bytes(os.urandom(2), "big") % 5000


def wait_until(check: Callable[[], bool], timeout_s: float, step_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step_s)
    return check()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not alive: it holds nothing but its pid.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def cgroup_parents() -> list[Path]:
    """Every ``codex-box`` cgroup parent this process could have made runs under."""
    root = Path("/sys/fs/cgroup")
    parents = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            parents.append(root / path.lstrip("/") / "codex-box")
        for controller in controllers.split(","):
            if controller in ("pids", "memory"):
                parents.append(root / controller / path.lstrip("/") / "codex-box")
    return [p for p in parents if p.is_dir()]


def cgroups_of(keeper_pid: int) -> list[Path]:
    """The run cgroups a keeper made (``PID-RUNID`` under each codex-box parent)."""
    return [c for p in cgroup_parents() for c in p.glob(f"{keeper_pid}-*")]


def containers_of(backend: str, session_id: str) -> list[str]:
    if backend not in ENGINE_CLI:
        return []
    out = subprocess.run(
        [*ENGINE_CLI[backend], "ps", "-aq", "--filter", f"label=codex-box.session={session_id}"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    return out.split()


def mounts_naming(*needles: str) -> list[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line for line in lines if any(n and n in line for n in needles)]


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found += [int(p) for p in text.split()]
    return found


class Footprint:
    """What one live session holds on the host, taken while it lives (so each later
    "nothing left" check has first seen the thing it says is gone)."""

    def __init__(self, backend: str, codex_home: Path, session_id: str, workspace: Path,
                 before: set[str]) -> None:
        self.backend = backend
        self.codex_home = codex_home
        self.session_id = session_id
        self.workspace = workspace
        self.before = before
        state = state_of(codex_home, session_id)
        self.keeper_pid = int(state["keeper_pid"])
        self.cgroups = cgroups_of(self.keeper_pid)
        self.containers = containers_of(backend, session_id)
        self.netns: list[str] = []
        for container in self.containers:
            key = subprocess.run(
                [*ENGINE_CLI[backend], "inspect", "-f", "{{.NetworkSettings.SandboxKey}}",
                 container], capture_output=True, text=True, timeout=60,
            ).stdout.strip()
            if key:
                self.netns.append(key)
        if backend == "native" and os.geteuid() == 0:
            assert self.cgroups, "a native session as root has a cgroup (the default cap)"
        if backend != "native":
            assert len(self.containers) == 1, self.containers
        self.placeholders = {p.name for p in workspace.iterdir()} - before

    def leftovers(self, *markers: str) -> list[str]:
        found = []
        if alive(self.keeper_pid):
            found.append(f"keeper {self.keeper_pid} still runs")
        for marker in markers:
            found += [f"process {p} ({marker!r})" for p in processes_with(marker)]
        found += [f"cgroup {c}" for c in self.cgroups if c.exists()]
        found += [f"cgroup {c}" for c in cgroups_of(self.keeper_pid)]
        found += [f"container {c}" for c in containers_of(self.backend, self.session_id)]
        # (Docker removes an unmounted netns file lazily: only a mount of it counts.)
        ids = [self.session_id, *self.containers, *(os.path.basename(n) for n in self.netns)]
        found += [f"mount {m}" for m in mounts_naming(*ids)]
        if (self.codex_home / "sessions" / self.session_id).exists():
            found.append("its session directory")
        now = {p.name for p in self.workspace.iterdir()}
        found += [f"workspace placeholder {n}" for n in sorted(now - self.before)]
        return found


def session_starter(cli, codex_home: Path) -> Iterator[Callable[..., str]]:
    """For a ``sessions`` fixture (``yield from`` it):
    ``sessions(backend, *flags, profile="workspace")`` → a started session's id;
    every one still live is stopped after the test (its keeper killed if need be)."""
    started: list[str] = []

    def start(backend: str, *flags: str, profile: str = "workspace", **kw: Any) -> str:
        ran = cli("session", "start", "--backend", backend, "--profile", profile, *flags, **kw)
        assert ran.returncode == 0, ran.stderr
        session_id = ran.stdout.strip()
        started.append(session_id)
        return session_id

    yield start
    for session_id in started:
        try:
            pid = int(state_of(codex_home, session_id)["keeper_pid"])
        except OSError:
            continue
        cli("session", "stop", session_id, timeout=90)
        if alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            cli("gc", timeout=90)


def exec_in(cli, session_id: str, *argv: str, flags: tuple[str, ...] = (), **kw):
    """``codex-box exec --session ID [flags] -- argv`` through the test's CLI."""
    return cli("exec", "--session", session_id, *flags, "--", *argv, **kw)


def audit_records(codex_home: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (codex_home / "audit.log").read_text().splitlines()]
