"""Podman-only promises, on the real service (what Docker and Podman share is in
test_engines.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.core.resources import seccomp_dir

pytestmark = pytest.mark.usefixtures("podman_available")
NO_DOCKER = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
NO_ENGINE = {**NO_DOCKER, "CONTAINER_HOST": "unix:///nonexistent/podman.sock"}


def test_auto_picks_podman_when_docker_does_not_answer_and_native_when_neither_does(cli):
    data = json.loads(cli("run", "--print-spec", "--", "true", env=NO_DOCKER).stdout)
    assert data["backend"] == "podman"
    assert any(s.startswith("docker: no Docker engine answers") for s in data["skipped"])
    without = json.loads(cli("run", "--print-spec", "--", "true", env=NO_ENGINE).stdout)
    assert without["backend"] == "native"
    assert any(s.startswith("podman: no Podman service answers at "
                            "unix:///nonexistent/podman.sock") for s in without["skipped"])


def test_auto_runs_on_podman_when_docker_does_not_answer(cli):
    ran = cli("run", "--json", "--", "true", env=NO_DOCKER)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stderr.strip().splitlines()[-1])["backend"] == "podman"


def test_a_backend_named_in_the_environment_is_used(cli):
    data = json.loads(cli("run", "--print-spec", "--", "true",
                          env={"CODEX_BOX_BACKEND": "podman"}).stdout)
    assert data["backend"] == "podman"


def test_print_spec_shows_the_podman_py_request_and_runs_nothing(cli, workspace: Path):
    ran = cli("run", "--backend", "podman", "--print-spec", "--profile", "workspace", "--",
              "touch", "ran")
    request = json.loads(ran.stdout)["request"]
    assert request["network_mode"] == "none" and request["read_only"] is True
    assert request["cap_drop"] == ["ALL"] and request["no_new_privileges"] is True
    assert Path(request["seccomp_profile_path"]).parent == seccomp_dir()
    assert request["entrypoint"] == [""] and request["command"] == ["touch", "ran"]
    assert not (workspace / "ran").exists()


def test_the_options_podman_py_could_drop_are_in_force_inside(cli):
    """Observed from inside the container, not read back from the request."""
    script = ("ulimit -n; ulimit -u; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null "
              "|| cat /sys/fs/cgroup/pids.max; touch /usr/x 2>&1; stat -c %a /tmp")
    ran = cli("run", "--backend", "podman", "--profile", "workspace", "--pids", "77", "--",
              "bash", "-c", script)
    assert ran.returncode == 0, ran.stderr
    nofile, nproc, pids, touch, tmp_mode = ran.stdout.splitlines()
    assert nofile.isdigit() and nproc.isdigit(), "explicit, finite rlimits"
    assert pids == "77"
    assert "Read-only file system" in touch
    assert tmp_mode == "1777"


def test_an_unreachable_service_says_how_to_start_it(cli):
    ran = cli("run", "--backend", "podman", "--", "true",
              env={"CONTAINER_HOST": "unix:///nonexistent/podman.sock"})
    assert ran.returncode == 125
    assert "podman system service --time=0 unix:///nonexistent/podman.sock" in ran.stderr
