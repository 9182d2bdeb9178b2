"""The engine dies under a running command: dockerd SIGKILLed and restarted, the Podman
API service the same. codex-box ends with 125 and one line naming the engine, and once
the engine is back, `gc` leaves no container or network holder of the run.

These tests kill the machine's rootful dockerd and Podman service (and start them again
with the scripts CI uses): the Makefile runs tests/faults alone, after every other suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import CODEX_BOX
from tests.integration.session_helpers import containers_of, wait_until
from tests.procs import marker_for, processes_with

from .conftest import SERVICES, gc, records, restart, service_pids, settled_leftovers, verify


def test_an_engine_killed_mid_run_ends_it_125_naming_the_engine_and_gc_leaves_nothing(
    engine: str, base_env: dict[str, str], workspace: Path, codex_home: Path, tmp_path: Path,
) -> None:
    session = f"fault-engine-{os.getpid()}-{time.monotonic_ns()}"
    env = {**base_env, "CODEX_BOX_SESSION": session}
    marker, set_m = marker_for(f"{engine}-engine-dies")
    before = {p.name for p in workspace.iterdir()}
    errors = tmp_path / "stderr"
    with errors.open("w") as stderr:
        proc = subprocess.Popen(
            # net-read-only: the run has a network holder container as well.
            [CODEX_BOX, "run", "--backend", engine, "--profile", "net-read-only", "--",
             "bash", "-c", f'{set_m}; exec -a "$M" sleep 120'],
            cwd=workspace, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    assert wait_until(lambda: bool(processes_with(marker)), 60), "the command never started"
    pids = service_pids(engine)
    assert pids, f"no rootful {engine} service to kill"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)

    code = proc.wait(timeout=120)
    said = errors.read_text().strip().splitlines()
    assert code == 125, said
    assert len(said) == 1 and SERVICES[engine][2] in said[0], said
    ended = [r for r in records(codex_home) if r.get("session_id") == session
             and r.get("phase") == "ended"]
    assert ended, "the run's end was not audited"

    restart(engine)
    # What the dead engine kept codex-box from removing (the command's container and
    # its network holder), seen before gc, so "nothing after gc" means something.
    assert len(containers_of(engine, session)) == 2, containers_of(engine, session)
    swept = gc(env)
    assert swept.returncode == 0, swept.stderr
    where = {"backend": engine, "session": session, "codex_pid": proc.pid, "marker": marker,
             "workspace": workspace, "before": before, "run_id": None}
    assert settled_leftovers(**where) == []  # containers (holder too), mounts, processes
    assert verify(codex_home, env).returncode == 0

    again = subprocess.run([CODEX_BOX, "run", "--backend", engine, "--profile", "offline",
                            "--", "true"], cwd=workspace, env=env, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr
