"""Docker-specific promises, on the real engine. Network tests talk only to a server
container this test starts on the same engine network (never outside this machine)."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import CODEX_BOX
from tests.procs import marker_for, processes_with

pytestmark = pytest.mark.usefixtures("docker_available")


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()


@pytest.fixture
def dbox(cli):
    def run(profile: str, *argv: str, flags: tuple[str, ...] = (), **kw: object):
        return cli("run", "--backend", "docker", "--profile", profile, *flags, "--", *argv,
                   **kw)  # type: ignore[arg-type]

    return run


@pytest.fixture
def web_server() -> Iterator[str]:
    """An HTTP server in its own container on the default bridge; yields its address."""
    name = f"codex-box-test-web-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--rm", "--name", name, "--label", "codex-box.test=1",
           "codex-box/test", "sh", "-c",
           "mkdir -p /www && echo hello-from-the-test-server > /www/index.html && "
           "exec httpd -f -p 8080 -h /www")
    try:
        address = docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name)
        deadline = time.monotonic() + 10  # bounded: wait until it answers its own probe
        while time.monotonic() < deadline:
            probe = subprocess.run(["docker", "exec", name, "wget", "-qO-",
                                    "http://127.0.0.1:8080/"], capture_output=True, text=True)
            if "hello" in probe.stdout:
                break
            time.sleep(0.1)
        yield f"http://{address}:8080/"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


@pytest.mark.parametrize("profile", ["offline", "workspace"])
def test_no_network_profiles_cannot_reach_a_server_container(dbox, web_server, profile):
    ran = dbox(profile, "curl", "-sS", "--max-time", "3", web_server)
    assert ran.returncode != 0
    assert "hello-from-the-test-server" not in ran.stdout


@pytest.mark.parametrize("profile", ["workspace-net", "net-read-only"])
def test_network_profiles_reach_the_server_container(dbox, web_server, profile):
    ran = dbox(profile, "curl", "-sS", "--max-time", "5", web_server)
    assert ran.returncode == 0, ran.stderr
    assert "hello-from-the-test-server" in ran.stdout


def test_a_fork_loop_is_stopped_by_the_pids_limit_and_the_host_stays_responsive(dbox):
    bomb = ("i=0; while [ $i -lt 2000 ]; do (sleep 20 &) 2>/dev/null || break; i=$((i+1)); "
            "done; echo forked $i")
    started = time.monotonic()
    ran = dbox("offline", "bash", "-c", bomb, flags=("--pids", "64", "--timeout", "60"))
    forked = int(ran.stdout.split("forked")[1].split()[0])
    assert forked < 64, ran.stdout
    assert time.monotonic() - started < 30
    probe = subprocess.run(["true"], timeout=5, check=False)  # the host still forks
    assert probe.returncode == 0


def test_a_gibibyte_under_a_256m_limit_ends_as_oom_with_a_clear_result(dbox):
    hog = "b = bytearray(1024 ** 3); print('allocated')"
    ran = dbox("offline", "python3", "-c", hog, flags=("--memory", "256m", "--json"))
    assert "allocated" not in ran.stdout
    assert ran.returncode == 137
    assert "OOM killer" in ran.stderr
    result = json.loads(ran.stderr.strip().splitlines()[-1])
    assert result["oom_killed"] is True and result["backend"] == "docker"


def test_a_container_left_by_a_killed_codex_box_is_removed_by_gc(base_env, workspace):
    marker, set_m = marker_for("docker-orphan")
    proc = subprocess.Popen([CODEX_BOX, "run", "--backend", "docker", "--profile", "offline",
                             "--", "bash", "-c", f'{set_m}; exec -a "$M" sleep 60'],
                            cwd=workspace, env=base_env)
    deadline = time.monotonic() + 20
    while not processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker), "the container never started"
    proc.kill()  # SIGKILL: no chance to remove the container
    proc.wait()
    assert docker("ps", "-aq", "--filter", "label=codex-box.owner"), "expected a leftover"
    gc = subprocess.run([CODEX_BOX, "gc"], capture_output=True, text=True, env=base_env,
                        check=True)
    assert "docker: removed" in gc.stdout
    assert docker("ps", "-aq", "--filter", "label=codex-box.owner") == ""
    assert processes_with(marker) == []


def test_a_missing_image_is_a_clear_error_and_nothing_runs(dbox, workspace):
    ran = dbox("workspace", "touch", "ran", flags=("--image", "codex-box/does-not-exist"))
    assert ran.returncode == 125
    assert "codex-box/does-not-exist" in ran.stderr and "make images" in ran.stderr
    assert not (workspace / "ran").exists()


def test_an_unreachable_engine_is_a_clear_error(cli, workspace):
    ran = cli("run", "--backend", "docker", "--", "touch", "ran",
              env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert ran.returncode == 125
    assert "no Docker engine answers at unix:///nonexistent/docker.sock" in ran.stderr
    assert not (workspace / "ran").exists()


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


def test_trusted_is_unconfined_but_not_privileged_and_has_no_engine_socket(cli, workspace):
    script = ("touch /etc/writable-rootfs && echo rootfs-writable; touch trusted-wrote-this; "
              "grep CapEff /proc/self/status; ls /var/run/docker.sock 2>&1; "
              "ip link add dummy0 type dummy 2>&1 || echo not-privileged")
    ran = cli("run", "--backend", "docker", "--profile", "trusted",
              "--yes-i-trust-this-workspace", "--", "bash", "-c", script)
    assert ran.returncode == 0, ran.stderr
    assert "rootfs-writable" in ran.stdout
    assert (workspace / "trusted-wrote-this").exists()
    cap_eff = int(ran.stdout.split("CapEff:")[1].split()[0], 16)
    assert cap_eff != 0 and cap_eff != (1 << 41) - 1, "default caps, not all of them"
    assert "No such file" in ran.stdout
    assert "not-privileged" in ran.stdout


def test_dash_t_gives_the_command_a_tty(dbox):
    ran = dbox("offline", "sh", "-c", "test -t 1 && echo on-a-tty", flags=("-t",), input="")
    assert "on-a-tty" in ran.stdout


def test_print_spec_shows_the_engine_request_and_runs_nothing(cli, workspace):
    ran = cli("run", "--backend", "docker", "--print-spec", "--profile", "workspace", "--",
              "touch", "ran")
    host = json.loads(ran.stdout)["request"]["HostConfig"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert any(o.startswith("seccomp={") for o in host["SecurityOpt"])
    assert not (workspace / "ran").exists()
