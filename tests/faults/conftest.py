"""What the fault suite shares: launching codex-box as a process it can kill or starve,
and looking on the host for everything a launch may leave (processes, containers and
network holders, cgroups, mounts, workspace placeholders) and at the audit log.

These tests break shared things on purpose (they kill dockerd and the Podman service,
fill disks): the Makefile runs tests/faults alone, after every other suite.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CODEX_BOX
from tests.integration.session_helpers import (
    ENGINE_CLI,
    cgroup_parents,
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


def containers_labelled(backend: str, session: str) -> list[str]:
    if backend not in ENGINE_CLI:
        return []
    out = subprocess.run(
        [*ENGINE_CLI[backend], "ps", "-aq", "--filter", f"label=codex-box.session={session}"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    return out.split()


def cgroups_of_pid(pid: int) -> list[Path]:
    """The run cgroups a codex-box process made (``PID-RUNID`` under each parent)."""
    return [c for p in cgroup_parents() for c in p.glob(f"{pid}-*")]


def leftovers(*, backend: str, session: str, codex_pid: int, marker: str,
              workspace: Path, before: set[str], run_id: str | None) -> list[str]:
    found = [f"process {p} ({marker})" for p in processes_with(marker)]
    found += [f"container {c}" for c in containers_labelled(backend, session)]
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
