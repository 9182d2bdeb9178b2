"""Rootless Podman where it cannot enforce codex-box's limits (issue 21).

On a cgroup v1 host (this CI machine: v1 controllers, an empty v2 hierarchy beside
them, nothing delegated to users) a rootless Podman service cannot apply pids, memory
or cpu limits: Podman only warns "resource limits are not supported and ignored". The
default ``--pids 4096`` is such a limit, so codex-box refuses ``--backend podman`` as a
normal user rather than run a container without it. These tests run in the non-root
leg (scripts/ci-nonroot.sh), where CODEX_BOX_BACKENDS leaves podman out, against the
user's own rootless service: the refusal is one line, exit 125, nothing is created in
the user's Podman, the audit log records it, and ``doctor`` says exactly why. Where
rootless Podman can enforce the limits (cgroup v2 with the controllers delegated),
these fail: name podman in that leg's CODEX_BOX_BACKENDS and its backend tests run
instead (and these are deselected).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from orchestrator.backends.containers.engine_api import Endpoint
from orchestrator.backends.podman.host import LIBPOD
from orchestrator.compile.spec import podman_host
from tests.conftest import REQUIRE

pytestmark = pytest.mark.needs_backend_outside_leg("podman")

REASON = "is rootless on cgroup v1, where it ignores pids/memory/cpu limits"


@pytest.fixture
def rootless() -> dict[str, str]:
    """The environment that points codex-box at this user's rootless service (the
    suite's clean environment keeps no XDG_RUNTIME_DIR)."""
    if os.geteuid() == 0:
        pytest.skip("needs a normal user: as root Podman is rootful (the root leg runs "
                    "the Podman backend's own tests)")
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", "")
    url = podman_host({"XDG_RUNTIME_DIR": runtime_dir}, uid=os.getuid())
    try:
        Endpoint(url).ping()
    except OSError as exc:
        problem = (f"no rootless Podman service at {url} ({exc}); start it: "
                   f"podman system service --time=0 {url} &")
        if REQUIRE:
            pytest.fail(f"rootless Podman required (CODEX_BOX_REQUIRE_ENGINES=1) but: {problem}")
        pytest.skip(problem)
    return {"XDG_RUNTIME_DIR": runtime_dir, "CONTAINER_HOST": url}


def _containers(url: str) -> list[str]:
    listed = Endpoint(url).call("GET", f"{LIBPOD}/containers/json?all=true")
    return sorted(c["Id"] for c in listed)


def test_backend_podman_as_a_normal_user_is_refused_in_one_line_and_audited(
        cli, rootless, codex_home: Path, workspace: Path):
    before = _containers(rootless["CONTAINER_HOST"])
    ran = cli("run", "--backend", "podman", "--profile", "offline", "--", "touch", "ran",
              env=rootless)
    assert ran.returncode == 125, ran.stdout + ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    url = rootless["CONTAINER_HOST"]
    assert lines[0].startswith("codex-box: ") and f"podman: Podman at {url} {REASON}" in lines[0]
    assert not (workspace / "ran").exists()
    assert _containers(rootless["CONTAINER_HOST"]) == before, "a container was created"
    records = [json.loads(line) for line in (codex_home / "audit.log").read_text().splitlines()]
    refused = [r for r in records
               if r.get("decision") == "denied" and REASON in r.get("reason", "")]
    assert refused and refused[-1]["operation"] == "command_exec", records[-3:]


def test_a_session_on_rootless_podman_is_refused_alike(cli, rootless, codex_home: Path):
    before = _containers(rootless["CONTAINER_HOST"])
    ran = cli("session", "start", "--backend", "podman", "--profile", "workspace", env=rootless)
    assert ran.returncode == 125, ran.stdout + ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1 and REASON in ran.stderr
    assert _containers(rootless["CONTAINER_HOST"]) == before
    assert not list((codex_home / "sessions").glob("*/state.json"))


def test_doctor_says_why_rootless_podman_cannot_run_here(rootless, base_env, workspace):
    ran = subprocess.run([str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "codex-box"),
                          "doctor", "--json"], env={**base_env, **rootless}, cwd=workspace,
                         capture_output=True, text=True, timeout=30, check=False)
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    podman = next(row for row in report["backends"] if row["name"] == "podman")
    assert podman["available"] is False and REASON in podman["reason"], podman
    assert podman["facts"]["engine"].endswith("(rootless)")
    assert "podman" not in report["profiles"].values()


def test_the_one_run_it_allows_keeps_the_users_own_uid(cli, rootless, workspace: Path):
    """``--pids 0`` (no limit to drop) and no network: rootless Podman runs it. The
    workspace stays the user's: without ``--userns keep-id`` the container's uid would
    be a subordinate one on the host and the write would fail."""
    quoted = "codex-box%2Ftest"
    if Endpoint(rootless["CONTAINER_HOST"]).request(
            "GET", f"{LIBPOD}/images/{quoted}/exists").status != 204:
        problem = "codex-box/test is not in this user's Podman (scripts/ci-nonroot.sh loads it)"
        if REQUIRE:
            pytest.fail(f"required (CODEX_BOX_REQUIRE_ENGINES=1) but: {problem}")
        pytest.skip(problem)
    ran = cli("run", "--backend", "podman", "--pids", "0", "--image", "codex-box/test",
              "--profile", "workspace", "--", "touch", "made", env=rootless)
    assert ran.returncode == 0, ran.stderr
    made = (workspace / "made").stat()
    assert (made.st_uid, made.st_gid) == (os.getuid(), os.getgid())
