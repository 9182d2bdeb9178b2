"""What both container engines (Docker and Podman) must do the same way, on the real
engines. Network tests talk only to a server container this test starts on the same
engine's network (never outside this machine)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CODEX_BOX
from tests.procs import marker_for, processes_with

ENTRYPOINT_IMAGE = "codex-box/entrypoint-test"
UNREACHABLE = {
    "docker": ("DOCKER_HOST", "unix:///nonexistent/docker.sock", "no Docker engine answers"),
    "podman": ("CONTAINER_HOST", "unix:///nonexistent/podman.sock", "no Podman service answers"),
}


@pytest.fixture(params=["docker", "podman"])
def engine(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    request.getfixturevalue(f"{name}_available")
    return name


def cli_of(engine: str, *args: str, check: bool = True) -> str:
    return subprocess.run([engine, *args], capture_output=True, text=True, check=check,
                          timeout=60).stdout.strip()


def leftovers(engine: str, session: str) -> str:
    """Containers of this test's own session (other codex-box runs may share the engine)."""
    return cli_of(engine, "ps", "-aq", "--filter", f"label=codex-box.session={session}")


@pytest.fixture
def session() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def ebox(cli, engine):
    def run(profile: str, *argv: str, flags: tuple[str, ...] = (), **kw: object):
        return cli("run", "--backend", engine, "--profile", profile, *flags, "--", *argv,
                   **kw)  # type: ignore[arg-type]

    run.engine = engine  # type: ignore[attr-defined]
    return run


@pytest.fixture
def web_server(engine) -> Iterator[str]:
    """An HTTP server in its own container on the engine's default network."""
    name = f"codex-box-test-web-{uuid.uuid4().hex[:8]}"
    cli_of(engine, "run", "-d", "--rm", "--name", name, "--label", "codex-box.test=1",
           *(["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
             if engine == "podman" else []),
           "codex-box/test", "sh", "-c",
           "mkdir -p /www && echo hello-from-the-test-server > /www/index.html && "
           "exec httpd -f -p 8080 -h /www")
    try:
        address = cli_of(engine, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name)
        deadline = time.monotonic() + 10  # bounded: wait until it answers its own probe
        while time.monotonic() < deadline:
            probe = subprocess.run([engine, "exec", name, "wget", "-qO-",
                                    "http://127.0.0.1:8080/"], capture_output=True, text=True,
                                   check=False, timeout=10)
            if "hello" in probe.stdout:
                break
            time.sleep(0.1)
        yield f"http://{address}:8080/"
    finally:
        subprocess.run([engine, "rm", "-f", name], capture_output=True, check=False)


@pytest.mark.parametrize("profile", ["offline", "workspace"])
def test_no_network_profiles_cannot_reach_a_server_container(ebox, web_server, profile):
    ran = ebox(profile, "curl", "-sS", "--max-time", "3", web_server)
    assert ran.returncode != 0
    assert "hello-from-the-test-server" not in ran.stdout


def test_workspace_net_reaches_the_server_container(ebox, web_server):
    ran = ebox("workspace-net", "curl", "-sS", "--max-time", "5", web_server)
    assert ran.returncode == 0, ran.stderr
    assert "hello-from-the-test-server" in ran.stdout


def test_net_read_only_reaches_the_server_container_neither_directly_nor_by_ip(ebox, web_server):
    # Through the proxy an IP literal is refused (403); around it there is no route.
    proxied = ebox("net-read-only", "curl", "-sS", "--max-time", "5", "-i", web_server)
    assert "403" in proxied.stdout.splitlines()[0], proxied.stdout + proxied.stderr
    direct = ebox("net-read-only", "curl", "-sS", "--max-time", "5", "--noproxy", "*", web_server)
    assert direct.returncode != 0
    assert "hello-from-the-test-server" not in proxied.stdout + direct.stdout


def test_a_fork_loop_is_stopped_by_the_pids_limit_and_the_host_stays_responsive(ebox):
    bomb = ("i=0; while [ $i -lt 2000 ]; do (sleep 20 &) 2>/dev/null || break; i=$((i+1)); "
            "done; echo forked $i")
    started = time.monotonic()
    ran = ebox("offline", "bash", "-c", bomb, flags=("--pids", "64", "--timeout", "60"))
    forked = int(ran.stdout.split("forked")[1].split()[0])
    assert forked < 64, ran.stdout
    assert time.monotonic() - started < 30
    probe = subprocess.run(["true"], timeout=5, check=False)  # the host still forks
    assert probe.returncode == 0


def test_a_gibibyte_under_a_256m_limit_ends_as_oom_with_a_clear_result(ebox):
    hog = "b = bytearray(1024 ** 3); print('allocated')"
    ran = ebox("offline", "python3", "-c", hog, flags=("--memory", "256m", "--json"))
    assert "allocated" not in ran.stdout
    assert ran.returncode == 137
    assert "OOM killer" in ran.stderr
    result = json.loads(ran.stderr.strip().splitlines()[-1])
    assert result["oom_killed"] is True and result["backend"] == ebox.engine


def test_an_exit_137_without_a_memory_limit_is_not_called_oom(ebox):
    ran = ebox("offline", "sh", "-c", "kill -KILL $$", flags=("--json",))
    assert ran.returncode == 137
    assert json.loads(ran.stderr.strip().splitlines()[-1])["oom_killed"] is False


def test_a_container_left_by_a_killed_codex_box_is_removed_by_gc(engine, base_env, workspace,
                                                                session):
    marker, set_m = marker_for(f"{engine}-orphan")
    proc = subprocess.Popen([CODEX_BOX, "run", "--backend", engine, "--profile", "offline",
                             "--", "bash", "-c", f'{set_m}; exec -a "$M" sleep 60'],
                            cwd=workspace, env={**base_env, "CODEX_BOX_SESSION": session})
    deadline = time.monotonic() + 20
    while not processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker), "the container never started"
    proc.kill()  # SIGKILL: no chance to remove the container
    proc.wait()
    assert leftovers(engine, session), "expected a leftover"
    gc = subprocess.run([CODEX_BOX, "gc"], capture_output=True, text=True, env=base_env,
                        check=True)
    assert f"{engine}: removed" in gc.stdout
    assert leftovers(engine, session) == ""
    deadline = time.monotonic() + 10
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == []


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_signalling_codex_box_stops_and_removes_its_container(engine, base_env, workspace, how,
                                                              session):
    marker, set_m = marker_for(f"{engine}-signalled")
    proc = subprocess.Popen([CODEX_BOX, "run", "--backend", engine, "--profile", "offline",
                             "--", "bash", "-c", f'{set_m}; exec -a "$M" sleep 60'],
                            cwd=workspace, env={**base_env, "CODEX_BOX_SESSION": session},
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker), "the container never started"
    proc.send_signal(how)
    code = proc.wait(timeout=20)
    assert code == 128 + how, proc.stderr.read() if proc.stderr else ""
    assert processes_with(marker) == []
    assert leftovers(engine, session) == "", "the container must be removed"


def test_a_timeout_exits_124_and_leaves_no_container(ebox, engine, session):
    started = time.monotonic()
    ran = ebox("offline", "sh", "-c", "trap '' TERM; sleep 60", flags=("--timeout", "2"),
               env={"CODEX_BOX_SESSION": session})
    assert ran.returncode == 124
    assert time.monotonic() - started < 20
    assert leftovers(engine, session) == ""


def test_a_missing_image_is_a_clear_error_and_nothing_runs(ebox, workspace):
    ran = ebox("workspace", "touch", "ran", flags=("--image", "codex-box/does-not-exist"))
    assert ran.returncode == 125
    assert "codex-box/does-not-exist" in ran.stderr and "make images" in ran.stderr
    assert not (workspace / "ran").exists()


def test_an_unreachable_engine_is_a_clear_error_and_nothing_runs(cli, engine, workspace):
    variable, url, message = UNREACHABLE[engine]
    ran = cli("run", "--backend", engine, "--", "touch", "ran", env={variable: url})
    assert ran.returncode == 125
    assert f"{message} at {url}" in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1
    assert not (workspace / "ran").exists()


def test_trusted_is_unconfined_but_not_privileged_and_has_no_engine_socket(cli, engine,
                                                                           workspace):
    script = ("touch /etc/writable-rootfs && echo rootfs-writable; touch trusted-wrote-this; "
              "grep CapEff /proc/self/status; ls /var/run/docker.sock /run/podman 2>&1; "
              "ip link add dummy0 type dummy 2>&1 || echo not-privileged")
    ran = cli("run", "--backend", engine, "--profile", "trusted",
              "--yes-i-trust-this-workspace", "--", "bash", "-c", script)
    assert ran.returncode == 0, ran.stderr
    assert "rootfs-writable" in ran.stdout
    assert (workspace / "trusted-wrote-this").exists()
    cap_eff = int(ran.stdout.split("CapEff:")[1].split()[0], 16)
    assert cap_eff != 0 and cap_eff != (1 << 41) - 1, "default caps, not all of them"
    assert ran.stdout.count("No such file") == 2
    assert "not-privileged" in ran.stdout


def test_dash_t_gives_the_command_a_tty(ebox):
    ran = ebox("offline", "sh", "-c", "test -t 1 && echo on-a-tty", flags=("-t",), input="")
    assert "on-a-tty" in ran.stdout


@pytest.fixture
def entrypoint_image(engine, tmp_path: Path) -> Iterator[str]:
    """codex-box/test with an ENTRYPOINT and a CMD of its own, in ``engine``."""
    tar = tmp_path / "rootfs.tar"
    box = cli_of(engine, "create", "codex-box/test", "true")
    try:
        cli_of(engine, "export", "-o", str(tar), box)
    finally:
        cli_of(engine, "rm", box, check=False)
    cli_of(engine, "import", "--change", 'ENTRYPOINT ["/bin/echo", "IMAGE-ENTRYPOINT"]',
           "--change", 'CMD ["IMAGE-CMD"]', str(tar), ENTRYPOINT_IMAGE)
    yield ENTRYPOINT_IMAGE
    cli_of(engine, "rmi", ENTRYPOINT_IMAGE, check=False)


def test_an_images_entrypoint_never_wraps_the_command(ebox, entrypoint_image):
    ran = ebox("offline", "sh", "-c", 'echo "ran:$0:$*"', "zero", "one", "two",
               flags=("--image", entrypoint_image))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "ran:zero:one two\n"
    assert "IMAGE-ENTRYPOINT" not in ran.stdout and "IMAGE-CMD" not in ran.stdout


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_the_moment_the_container_exists_still_removes_it(engine, base_env, workspace,
                                                                   session, how):
    """Between create and the wait, a signal used to kill codex-box and leave the
    container running; now any moment after create ends in removal."""
    proc = subprocess.Popen([CODEX_BOX, "run", "--backend", engine, "--profile", "offline",
                             "--", "sleep", "60"], cwd=workspace, stderr=subprocess.PIPE,
                            env={**base_env, "CODEX_BOX_SESSION": session}, text=True)
    deadline = time.monotonic() + 20
    while not leftovers(engine, session) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert leftovers(engine, session), "the container never appeared"
    proc.send_signal(how)
    assert proc.wait(timeout=30) == 128 + how
    time.sleep(0.5)  # an engine-side removal is synchronous; this only guards the listing
    assert leftovers(engine, session) == "", "the container must be removed"
