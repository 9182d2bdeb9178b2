"""Docker-only promises, on the real engine (what Docker and Podman share is in
test_engines.py)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("docker_available")


def test_auto_picks_docker_when_it_answers_and_native_when_no_engine_does(cli):
    with_engine = json.loads(cli("run", "--print-spec", "--", "true").stdout)
    assert with_engine["backend"] == "docker"
    without = cli("run", "--print-spec", "--", "true",
                  env={"DOCKER_HOST": "unix:///nonexistent/docker.sock",
                       "CONTAINER_HOST": "unix:///nonexistent/podman.sock"})
    data = json.loads(without.stdout)
    assert data["backend"] == "native"
    assert any(s.startswith("docker: no Docker engine answers") for s in data["skipped"])
    assert any(s.startswith("podman: no Podman service answers") for s in data["skipped"])


def test_print_spec_shows_the_engine_request_and_runs_nothing(cli, workspace):
    ran = cli("run", "--backend", "docker", "--print-spec", "--profile", "workspace", "--",
              "touch", "ran")
    host = json.loads(ran.stdout)["request"]["HostConfig"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert any(o.startswith("seccomp={") for o in host["SecurityOpt"])
    assert not (workspace / "ran").exists()
