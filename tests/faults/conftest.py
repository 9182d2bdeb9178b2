"""What the fault suite shares: launching codex-box as a process it can kill or starve,
and looking on the host for everything a launch may leave (processes, containers and
network holders, cgroups, mounts, workspace placeholders) and at the audit log.

These tests break shared things on purpose (they kill dockerd and the Podman service,
fill disks): the Makefile runs tests/faults alone, after every other suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CODEX_BOX, REPO
from tests.integration.session_helpers import (
    cgroup_parents,
    containers_of,
    mounts_naming,
    wait_until,
)
from tests.procs import processes_with


def records(codex_home: Path) -> list[dict[str, Any]]:
    log = codex_home / "audit.log"
    if not log.exists():
        return []
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def verify(codex_home: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CODEX_BOX, "audit", "verify"], capture_output=True, text=True,
                          env=env, timeout=60, check=False)


def gc(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CODEX_BOX, "gc"], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def cgroups_of_pid(pid: int) -> list[Path]:
    """The run cgroups a codex-box process made (``PID-RUNID`` under each parent)."""
    return [c for p in cgroup_parents() for c in p.glob(f"{pid}-*")]


def leftovers(*, backend: str, session: str, codex_pid: int, marker: str,
              workspace: Path, before: set[str], run_id: str | None) -> list[str]:
    found = [f"process {p} ({marker})" for p in processes_with(marker)]
    found += [f"container {c}" for c in containers_of(backend, session)]
    found += [f"cgroup {c}" for c in cgroups_of_pid(codex_pid)]
    found += [f"mount {m}" for m in mounts_naming(*(n for n in (run_id, session) if n))]
    found += [f"placeholder {n}" for n in {p.name for p in workspace.iterdir()} - before]
    return found


def settled_leftovers(**kw: Any) -> list[str]:
    """Leftovers, once processes still being reaped (bounded: 15 s) have gone."""
    wait_until(lambda: not leftovers(**kw), 15, 0.2)
    return leftovers(**kw)


@pytest.fixture
def session() -> str:
    return f"fault-{uuid.uuid4().hex[:12]}"


def wait_for_decision(codex_home: Path, proc: subprocess.Popen[Any]) -> None:
    """Until the launch's decision is on disk (bounded: 60 s, or the process ended)."""
    deadline = time.monotonic() + 60
    while not any(r.get("phase") == "decided" for r in records(codex_home)):
        assert time.monotonic() < deadline and proc.poll() is None, "never decided"
        time.sleep(0.05)


SERVICES = {
    # engine: (how its service shows in /proc/PID/cmdline, start script, its name in errors)
    "docker": (b"dockerd\0", "scripts/start-dockerd.sh", "Docker"),
    "podman": (b"podman\0system\0service\0", "scripts/start-podman.sh", "Podman"),
}


def service_pids(engine: str) -> list[int]:
    """The rootful service's pids (a rootless user's own service is not ours to kill)."""
    head = SERVICES[engine][0]
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != 0:
                continue
            if Path(f"/proc/{entry}/cmdline").read_bytes().startswith(head):
                found.append(int(entry))
        except OSError:
            continue
    return found


def restart(engine: str) -> None:
    """Start the engine's service again with the script CI uses (no-op if it answers)."""
    subprocess.run(["bash", SERVICES[engine][1]], cwd=REPO, check=True, timeout=120,
                   stdout=subprocess.DEVNULL)


@pytest.fixture(params=["docker", "podman"])
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """An engine whose rootful service the test may SIGKILL; always running again after."""
    name = str(request.param)
    request.getfixturevalue(f"{name}_available")
    if os.geteuid() != 0:
        pytest.skip("killing the machine's rootful engine needs root (CI runs as root)")
    yield name
    restart(name)
