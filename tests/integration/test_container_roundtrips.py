"""Every engine round trip of a container run, pinned (issue 19): counts are
deterministic, timings are not (those are in bench/docker_overhead.py and
bench/podman_overhead.py).

The CLI runs in a child process whose every request to the engine is logged where all
of them pass (``Endpoint.send``); nothing else in the process speaks to an engine (no
SDK is even imported: checked at exit).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.backends.containers.engine_api import API_TIMEOUT_S
from orchestrator.backends.containers.ledger import Ledger
from orchestrator.compile.spec import podman_host
from orchestrator.core.spec import DEFAULT_DOCKER_HOST

# The child: log each request sent (method and path, ids and API version elided), run
# the real entry point, write the log when the process leaves (codex-box leaves with
# os._exit).
CHILD = r"""
import json, os, re, sys
from orchestrator.backends.containers.engine_api import Endpoint
sent, out, real_send, real_exit = [], sys.argv[1], Endpoint.send, os._exit

def send(self, method, path, *args, **kwargs):
    pending = real_send(self, method, path, *args, **kwargs)
    path = re.sub(r"/v[0-9.]+/libpod", "/libpod", path.split("?")[0])
    sent.append(method + " " + re.sub(r"[0-9a-f]{32,}", "{id}", path))
    return pending

def leave(code):
    sdks = sorted(m for m in ("podman", "docker", "requests") if m in sys.modules)
    with open(out, "w") as handle:
        json.dump({"code": code, "sent": sent, "sdks": sdks}, handle)
    real_exit(code)

Endpoint.send, os._exit = send, leave
sys.argv = ["codex-box", *sys.argv[2:]]
from orchestrator.cli.app import main
main()
"""

DOCKER_RUN = [
    "POST /containers/create",
    "POST /containers/{id}/attach",
    "POST /containers/{id}/wait",  # held from before start: no exit missed
    "POST /containers/{id}/start",
    "GET /containers/{id}/json",  # the OOM flag
    "DELETE /containers/{id}",
]
PODMAN_RUN = [
    "POST /libpod/containers/create",
    "POST /libpod/containers/{id}/init",
    "GET /libpod/containers/{id}/json",  # checks what was made, and its pid
    "POST /libpod/containers/{id}/attach",
    "POST /libpod/containers/{id}/start",
    "POST /libpod/containers/{id}/wait",
    "GET /libpod/containers/{id}/json",  # the OOM flag
    "DELETE /libpod/containers/{id}",
]
RUNS = {"docker": DOCKER_RUN, "podman": PODMAN_RUN}
SWEEP = {"docker": "GET /containers/json", "podman": "GET /libpod/containers/json"}
PROBE = {
    "docker": ["GET /_ping", "GET /images/codex-box%2Fbase/json"],
    "podman": ["GET /libpod/_ping", "GET /libpod/images/codex-box%2Fbase/exists"],
}


@pytest.fixture(params=["docker", "podman"])
def engine(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    request.getfixturevalue(f"{name}_available")
    return name


def url_of(engine: str) -> str:
    if engine == "docker":
        return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    return podman_host(os.environ, uid=os.getuid())


def sent(base_env: dict[str, str], workspace: Path, tmp_path: Path, *args: str,
         env: dict[str, str] | None = None) -> list[str]:
    out = tmp_path / f"sent-{time.monotonic_ns()}.json"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(out), "run", *args],
                          cwd=workspace, env={**base_env, **(env or {})}, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120, check=False)
    log = json.loads(out.read_text())
    assert log["code"] == 0 and proc.returncode == 0, proc.stderr
    assert log["sdks"] == [], "an engine SDK was imported on the run's path"
    return list(log["sent"])


def named_run(engine: str) -> tuple[str, ...]:
    return ("--backend", engine, "--profile", "offline", "--", "true")


def expected_sweep(engine: str) -> list[str]:
    """Where there is no private place for the ledger, every run sweeps (as before)."""
    return [] if Ledger(url_of(engine)).dir is not None else [SWEEP[engine]]


def test_a_named_backend_makes_only_the_runs_own_round_trips(engine, base_env, workspace,
                                                             tmp_path):
    first = sent(base_env, workspace, tmp_path, *named_run(engine))
    assert first in (RUNS[engine], [SWEEP[engine], *RUNS[engine]])  # once per boot
    assert sent(base_env, workspace, tmp_path, *named_run(engine)) == (
        expected_sweep(engine) + RUNS[engine])


def test_auto_probes_each_engine_once_with_two_round_trips(engine, base_env, workspace,
                                                           tmp_path):
    env = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"} if engine == "podman" else {}
    sent(base_env, workspace, tmp_path, *named_run(engine))  # the endpoint is known now
    ran = sent(base_env, workspace, tmp_path, "--profile", "offline", "--", "true", env=env)
    assert ran == PROBE[engine] + expected_sweep(engine) + RUNS[engine]


def test_a_run_killed_before_it_cleaned_up_makes_the_next_runs_sweep(engine, base_env,
                                                                     workspace, tmp_path):
    ledger = Ledger(url_of(engine))
    if ledger.dir is None:
        pytest.skip("no private runtime directory: every run sweeps (pinned above)")
    sent(base_env, workspace, tmp_path, *named_run(engine))
    record = Path(ledger.dir) / f"test-killed-{os.getpid()}"
    record.write_text(f"{socket.gethostname()}:1:not-its-start-time")  # a gone owner
    try:
        # Young: its create may still be in flight, so runs sweep until one covers it.
        for _ in range(2):
            assert sent(base_env, workspace, tmp_path, *named_run(engine)) == [
                SWEEP[engine], *RUNS[engine]]
        then = time.time() - API_TIMEOUT_S - 1
        os.utime(record, (then, then))
        assert sent(base_env, workspace, tmp_path, *named_run(engine)) == [
            SWEEP[engine], *RUNS[engine]]
        assert not record.exists(), "the sweep that covered it forgets it"
        assert sent(base_env, workspace, tmp_path, *named_run(engine)) == RUNS[engine]
    finally:
        record.unlink(missing_ok=True)
