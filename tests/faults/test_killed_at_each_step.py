"""codex-box SIGKILLed at each step of a launch, on every backend: what it leaves is
exactly what `gc` removes, the audit log still verifies, and the next run is unaffected.

The kill comes from codex-box itself at a named step (CODEX_BOX_FAILPOINT, see
orchestrator/core/failpoints.py): after the decision records, after the container or
cgroup is created, after the command started, and while the egress proxy serves a
connection. The proxy's client asks for a name that only the proxy would resolve: the
proxy is killed the moment the connection arrives, so nothing leaves the machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from orchestrator.core import failpoints
from tests.conftest import CODEX_BOX
from tests.procs import marker_for

from .conftest import gc, leftovers, records, settled_leftovers, verify

ASK_THE_PROXY = ("(curl -s -m 5 http://fault.test/ || wget -q -T 5 -O- http://fault.test/)"
                 " >/dev/null 2>&1; ")


def launch(backend: str, step: str, script: str, env: dict[str, str],
           workspace: Path, errors: Path) -> subprocess.Popen[bytes]:
    with errors.open("wb") as stderr:
        return subprocess.Popen(
            [CODEX_BOX, "run", "--backend", backend, "--profile", "net-read-only",
             "--", "bash", "-c", script],
            cwd=workspace, env={**env, failpoints.ENV: step},
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
        )


@pytest.mark.parametrize("step", failpoints.STEPS)
def test_a_launch_killed_at_each_step_leaves_nothing_after_gc(
    backend: str, step: str, base_env: dict[str, str], workspace: Path, codex_home: Path,
    session: str, tmp_path: Path,
) -> None:
    marker, set_m = marker_for(f"fault-{step}")
    env = {**base_env, "CODEX_BOX_SESSION": session}
    before = {p.name for p in workspace.iterdir()}
    script = f'{set_m}; {ASK_THE_PROXY if step == "proxy" else ""}exec -a "$M" sleep 60'
    errors = tmp_path / "stderr"
    proc = launch(backend, step, script, env, workspace, errors)
    assert proc.wait(timeout=90) == -signal.SIGKILL, errors.read_text()

    ours = [r for r in records(codex_home) if r.get("session_id") == session]
    decided = [r for r in ours if r.get("decision") == "allowed"]
    assert decided, f"no decision record before the {step} step: {ours}"
    run_id = decided[-1]["run_id"]
    assert not [r for r in ours if r.get("run_id") == run_id and r.get("phase") == "ended"], (
        "a killed launch cannot have an end record")
    checked = verify(codex_home, env)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    where = {"backend": backend, "session": session, "codex_pid": proc.pid, "marker": marker,
             "workspace": workspace, "before": before, "run_id": run_id}
    left = leftovers(**where)
    # What this step must have left, seen before gc (so "gone after gc" means something).
    if step != "decided" and backend != "native":
        assert any(x.startswith("container") for x in left), left
    if step != "decided" and backend == "native" and os.geteuid() == 0:
        assert any(x.startswith("cgroup") for x in left), left

    swept = gc(env)
    assert swept.returncode == 0, swept.stderr
    assert settled_leftovers(**where) == []

    # The next run in the same workspace is whole: both records, nothing left behind.
    after = subprocess.run(
        [CODEX_BOX, "run", "--backend", backend, "--profile", "net-read-only", "--", "true"],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert after.returncode == 0, after.stderr
    assert {p.name for p in workspace.iterdir()} == before
    assert verify(codex_home, env).returncode == 0
