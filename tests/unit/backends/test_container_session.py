"""The pure parts of a container session: its container's request and each exec's.

The engines themselves are exercised in tests/integration/test_container_sessions.py.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from pathlib import Path

import pytest

from orchestrator.backends.containers import common as container
from orchestrator.backends.containers import session_request
from orchestrator.backends.containers.exec_stream import Running, relay
from orchestrator.backends.containers.session_request import (
    HELPER_TARGET,
    docker_request,
    exec_argv,
    exec_body,
    exec_paths,
    helper_source,
    podman_request,
)
from orchestrator.backends.docker import translate as docker_translate
from orchestrator.backends.kubernetes import KubernetesBackend
from orchestrator.backends.podman.host import LIBPOD
from orchestrator.backends.podman.render import render
from orchestrator.backends.podman.translate import translate as podman_translate
from orchestrator.core.errors import BackendUnavailable, SandboxSetupError
from orchestrator.core.session import ExecCall
from orchestrator.hardening.apparmor import HostAppArmor
from tests.unit.backends.test_linux_translate_golden import fixed_spec
from tests.unit.backends.test_podman_translate import HOST as PODMAN_HOST

OWNER = {container.LABEL_OWNER: "host:42:123"}
CALL = ExecCall(
    exec_id="0123456789ab",
    argv=("make", "test"),
    env=(("PATH", "/usr/bin:/bin"), ("LANG", "C.UTF-8"), ("A", "x=y")),
    cwd="/work/space/sub",
)


def test_an_exec_runs_its_argv_under_the_helper_named_by_its_id() -> None:
    assert exec_argv(CALL) == [HELPER_TARGET, "-i", "0123456789ab", "-C", "/work/space/sub",
                               "--", "make", "test"]


def test_a_timeout_and_detach_reach_the_helper_before_the_argv() -> None:
    call = dataclasses.replace(CALL, timeout_s=1.5, detach=True)
    assert exec_argv(call) == [HELPER_TARGET, "-i", "0123456789ab", "-C", "/work/space/sub",
                               "-t", "1.5", "-d", "--", "make", "test"]
    assert exec_argv(dataclasses.replace(CALL, timeout_s=30.0))[5:7] == ["-t", "30"]


def test_an_argv_that_looks_like_helper_options_stays_the_commands_own() -> None:
    call = dataclasses.replace(CALL, argv=("-d", "--", "-t"))
    assert exec_argv(call)[-4:] == ["--", "-d", "--", "-t"]


@pytest.mark.parametrize(("engine", "prefix"), [("docker", ""), ("podman", LIBPOD)])
def test_the_exec_create_call_matches_the_golden_per_engine(engine: str, prefix: str,
                                                            codex_home: Path) -> None:
    spec = fixed_spec("workspace", codex_home=codex_home)
    paths = exec_paths(prefix, "box1")
    assert paths["create"] == {"docker": "/containers/box1/exec",
                               "podman": "/v4.0.0/libpod/containers/box1/exec"}[engine]
    assert paths["start"].format(id="e1") == f"{prefix}/exec/e1/start"
    assert paths["inspect"].format(id="e1") == f"{prefix}/exec/e1/json"
    assert exec_body(CALL, spec) == {
        "AttachStdin": True,
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "A=x=y"],  # in the keeper's order
        # The helper enters the exec's directory (-C): a missing one is its 125.
        "Cmd": [HELPER_TARGET, "-i", "0123456789ab", "-C", "/work/space/sub", "--", "make",
                "test"],
        "User": f"{spec.uid}:{spec.gid}",
        "WorkingDir": "/",
        "Privileged": False,
    }


def test_a_detached_exec_gets_no_stdin_but_keeps_its_output_stream(codex_home: Path) -> None:
    body = exec_body(dataclasses.replace(CALL, detach=True), fixed_spec("workspace",
                                                                        codex_home=codex_home))
    assert (body["AttachStdin"], body["AttachStdout"], body["AttachStderr"]) == (False, True, True)


def test_the_docker_session_container_only_pauses_with_the_runs_hardening(
        codex_home: Path) -> None:
    spec = dataclasses.replace(fixed_spec("workspace", codex_home=codex_home), argv=())
    run = docker_translate(spec, HostAppArmor(enabled=False))
    request = docker_request(run, "/opt/helper", OWNER)
    assert request["Cmd"] == [HELPER_TARGET, "--pause"]
    assert request["Env"] == []  # each exec brings its own, filtered by the keeper
    assert request["Labels"][container.LABEL_OWNER] == "host:42:123"
    assert request["Labels"][container.LABEL_ROLE] == "session"
    assert request["Labels"][container.LABEL_RUN] == spec.run_id
    assert not request["OpenStdin"] and not request["AttachStdin"]
    host = request["HostConfig"]
    assert host["Mounts"][-1] == {"Type": "bind", "Source": "/opt/helper",
                                  "Target": HELPER_TARGET, "ReadOnly": True,
                                  "BindOptions": {"Propagation": "rprivate"}}
    assert host["Mounts"][:-1] == run["HostConfig"]["Mounts"]
    for key in ("SecurityOpt", "CapDrop", "ReadonlyRootfs", "NetworkMode", "PidsLimit"):
        assert host[key] == run["HostConfig"][key]
    # The helper is pid 1 (it kills what a killed supervisor left); a run keeps its init.
    assert (host["Init"], run["HostConfig"]["Init"]) == (False, True)
    assert run["HostConfig"]["Mounts"][-1]["Target"] != HELPER_TARGET  # the run's is untouched


def test_the_podman_session_container_renders_for_libpod_with_the_runs_hardening(
        codex_home: Path) -> None:
    spec = dataclasses.replace(fixed_spec("workspace", codex_home=codex_home), argv=())
    run = podman_translate(spec, PODMAN_HOST)
    request = podman_request(run, "/opt/helper", OWNER)
    body = render(request)
    assert body["command"] == [HELPER_TARGET, "--pause"]
    assert "env" not in body
    assert body["mounts"][-1] == {"destination": HELPER_TARGET, "options": ["ro", "rprivate"],
                                  "source": "/opt/helper", "type": "bind"}
    assert body["labels"][container.LABEL_ROLE] == "session"
    assert (body["init"], render(run)["init"]) == (False, True)  # the helper is pid 1
    for key in ("no_new_privileges", "seccomp_profile_path", "cap_drop", "read_only_filesystem"):
        assert body[key] == render(run)[key]


def test_a_missing_helper_fails_closed_naming_the_fix(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setattr(session_request, "HELPER", str(tmp_path / "codex-box-supervise"))
    with pytest.raises(SandboxSetupError) as info:
        helper_source()
    assert "codex-box-supervise" in info.value.message
    assert "make install" in str(info.value.hint) and "libc6-dev" in str(info.value.hint)


def test_kubernetes_refuses_a_session_as_it_refuses_a_run(codex_home: Path) -> None:
    with pytest.raises(BackendUnavailable, match="not built yet"):
        KubernetesBackend().start_session(fixed_spec("workspace", codex_home=codex_home))


def test_a_cut_ends_a_relay_whose_engine_never_ends_the_stream() -> None:
    """After a kill, no keeper thread may wait forever on a stream the engine keeps open."""
    ours, engine = socket.socketpair()
    running = Running(ours)
    running.later(0.2, running.cut)
    done = threading.Event()
    with open("/dev/null", "wb") as null:
        thread = threading.Thread(target=lambda: (relay(ours, (None, null.fileno(),
                                                                null.fileno())), done.set()))
        began = time.monotonic()
        thread.start()
        assert done.wait(10), "the relay still waits on an open stream"
    assert time.monotonic() - began < 5
    engine.close()


def test_a_cancelled_cut_never_fires_and_a_cut_of_a_closed_socket_is_harmless() -> None:
    ours, engine = socket.socketpair()
    running = Running(ours)
    fired: list[int] = []
    running.later(0.1, fired.append, 1)
    running.cancel()
    time.sleep(0.3)
    assert fired == [] and running.timers == []
    ours.close()
    running.cut()  # the socket is closed: nothing to shut, no fd touched
    engine.close()
