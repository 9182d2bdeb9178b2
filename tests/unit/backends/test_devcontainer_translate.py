"""A devcontainer's spec fields in the engines' requests (pure translate, no engine):
the image's user instead of uid:gid, the hostname, extra labels (codex-box's own always
win), its volumes as private tmpfs; sessions' execs as that user; rootless Podman and the
native sandbox refusing what they cannot give; ``auto`` never picking native for one."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends import base
from orchestrator.backends.containers import common as container
from orchestrator.backends.containers.session_request import (
    docker_request,
    exec_body,
    helper_body,
    podman_request,
)
from orchestrator.backends.docker import translate as docker_translate
from orchestrator.backends.native.backend import cannot_enforce as native_cannot_enforce
from orchestrator.backends.podman.render import render
from orchestrator.backends.podman.translate import cannot_enforce as podman_cannot_enforce
from orchestrator.backends.podman.translate import translate as podman_translate
from orchestrator.core.session import ExecCall
from orchestrator.core.spec import SandboxSpec
from orchestrator.hardening.apparmor import HostAppArmor
from orchestrator.runner.selection import order_for
from tests.unit.backends.test_linux_translate_golden import WORKSPACE, fixed_spec
from tests.unit.backends.test_podman_render import podman_py
from tests.unit.backends.test_podman_translate import HOST as PODMAN_HOST

FILE = f"{WORKSPACE}/.devcontainer/devcontainer.json"
DOCKER_HOST = HostAppArmor(enabled=False)
ROOTLESS = dataclasses.replace(PODMAN_HOST, rootless=True, cgroups="v2", hybrid_cgroups=False)
CALL = ExecCall(exec_id="0123456789ab", argv=("make",), env=(("PATH", "/bin"),), cwd=WORKSPACE)
OWN = {container.LABEL_SESSION, container.LABEL_PROFILE, container.LABEL_RUN}


def dev_spec(profile: str, codex_home: Path, **fields: Any) -> SandboxSpec:
    base_spec = fixed_spec(profile, codex_home=codex_home)
    values: dict[str, Any] = {
        "devcontainer": FILE,
        "container_user": "vscode",
        "hostname": "devbox",
        "extra_labels": (("dev.team", "core"), ("org.opencontainers.image.title", "proj")),
        "extra_tmpfs": ("/home/vscode/.cache", "/var/lib/data"),
    }
    return dataclasses.replace(base_spec, **(values | fields))


# --- Docker --------------------------------------------------------------------------------


def test_docker_runs_as_the_image_s_user_with_its_hostname_labels_and_volumes(
    codex_home: Path,
) -> None:
    request = docker_translate(dev_spec("workspace", codex_home), DOCKER_HOST)
    assert request["User"] == "vscode"
    assert request["Hostname"] == "devbox"
    labels = request["Labels"]
    assert labels["dev.team"] == "core" and labels["org.opencontainers.image.title"] == "proj"
    assert labels[container.LABEL_SESSION] == "session-0001"
    assert request["HostConfig"]["Tmpfs"] == {
        "/tmp": container.TMP_OPTIONS,
        "/home/vscode/.cache": container.TMP_OPTIONS,
        "/var/lib/data": container.TMP_OPTIONS,
    }
    # The hardening stays the profile's.
    host = request["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"] is True
    assert host["Privileged"] is False and host["NetworkMode"] == "none"


def test_without_a_devcontainer_docker_s_request_is_unchanged(codex_home: Path) -> None:
    request = docker_translate(fixed_spec("workspace", codex_home=codex_home), DOCKER_HOST)
    assert request["User"] == "1000:1000"
    assert "Hostname" not in request
    assert request["HostConfig"]["Tmpfs"] == {"/tmp": container.TMP_OPTIONS}
    assert set(request["Labels"]) == OWN


def test_a_profile_without_a_private_tmp_gets_only_the_volumes(codex_home: Path) -> None:
    request = docker_translate(dev_spec("offline", codex_home), DOCKER_HOST)
    assert request["HostConfig"]["Tmpfs"] == {
        "/home/vscode/.cache": container.TMP_OPTIONS,
        "/var/lib/data": container.TMP_OPTIONS,
    }


def test_a_volume_at_tmp_is_the_private_tmp_once(codex_home: Path) -> None:
    request = docker_translate(
        dev_spec("workspace", codex_home, extra_tmpfs=("/tmp",)), DOCKER_HOST
    )
    assert request["HostConfig"]["Tmpfs"] == {"/tmp": container.TMP_OPTIONS}


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_codex_box_s_own_labels_cannot_be_overridden(engine: str, codex_home: Path) -> None:
    forged = (
        (container.LABEL_SESSION, "someone-else"),
        (container.LABEL_PROFILE, "trusted"),
        (container.LABEL_RUN, "run-x"),
        ("dev.team", "core"),
    )
    spec = dev_spec("workspace", codex_home, extra_labels=forged)
    if engine == "docker":
        labels = docker_translate(spec, DOCKER_HOST)["Labels"]
    else:
        labels = podman_translate(spec, PODMAN_HOST)["labels"]
    assert labels[container.LABEL_SESSION] == "session-0001"
    assert labels[container.LABEL_PROFILE] == "workspace"
    assert labels[container.LABEL_RUN] == "run-0001"
    assert labels["dev.team"] == "core"


def test_the_session_container_s_role_and_owner_are_codex_box_s(codex_home: Path) -> None:
    spec = dev_spec("workspace", codex_home, argv=(), extra_labels=(
        (container.LABEL_OWNER, "elsewhere:1:1"), (container.LABEL_ROLE, "netns"),
    ))  # fmt: skip
    owner = {container.LABEL_OWNER: "host:42:123"}
    docker = docker_request(docker_translate(spec, DOCKER_HOST), "/opt/helper", owner)
    podman = podman_request(podman_translate(spec, PODMAN_HOST), "/opt/helper", owner)
    for labels in (docker["Labels"], podman["labels"]):
        assert labels[container.LABEL_OWNER] == "host:42:123"
        assert labels[container.LABEL_ROLE] == "session"
    assert docker["User"] == "vscode" and docker["Hostname"] == "devbox"
    assert podman["user"] == "vscode" and podman["hostname"] == "devbox"


def test_no_extra_label_in_codex_box_s_namespace_survives(codex_home: Path) -> None:
    spec = dev_spec("trusted", codex_home, extra_labels=(
        (container.LABEL_ROLE, "netns"), (container.LABEL_APPARMOR, "unconfined"),
    ))  # fmt: skip
    labels = docker_translate(spec, DOCKER_HOST)["Labels"]
    assert {k for k in labels if k.startswith("codex-box.")} <= OWN


def test_docker_sends_no_hostname_with_a_container_network(codex_home: Path) -> None:
    request = docker_translate(dev_spec("net-read-only", codex_home), DOCKER_HOST)
    assert request["HostConfig"]["NetworkMode"].startswith("container:")
    assert "Hostname" not in request


# --- Podman --------------------------------------------------------------------------------


def test_podman_runs_as_the_image_s_user_with_its_hostname_labels_and_volumes(
    codex_home: Path,
) -> None:
    request = podman_translate(dev_spec("workspace", codex_home), PODMAN_HOST)
    assert request["user"] == "vscode"
    assert request["hostname"] == "devbox"
    assert request["labels"]["dev.team"] == "core"
    tmpfs = [m for m in request["mounts"] if m["type"] == "tmpfs"]
    assert tmpfs == [
        {"type": "tmpfs", "source": "tmpfs", "target": t, "mode": container.TMP_MODE}
        for t in ("/tmp", "/home/vscode/.cache", "/var/lib/data")
    ]
    body = render(request)
    assert body["hostname"] == "devbox" and body["user"] == "vscode"


def test_podman_s_body_with_a_hostname_is_what_podman_py_would_send(codex_home: Path) -> None:
    request = podman_translate(dev_spec("workspace", codex_home), PODMAN_HOST)
    request["labels"] = {**request["labels"], container.LABEL_OWNER: "host:1:2"}
    assert render(request) == podman_py(request)


def test_without_a_devcontainer_podman_s_request_is_unchanged(codex_home: Path) -> None:
    request = podman_translate(fixed_spec("workspace", codex_home=codex_home), PODMAN_HOST)
    assert request["user"] == "1000:1000" and "hostname" not in request


def test_rootless_podman_refuses_an_image_user_it_cannot_map(codex_home: Path) -> None:
    spec = dev_spec("workspace", codex_home)
    problem = podman_cannot_enforce(spec, ROOTLESS)
    assert problem == (
        "is rootless: it maps only your own uid, not devcontainer user 'vscode'; "
        "use --backend docker, or drop remoteUser"
    )
    assert podman_cannot_enforce(spec, PODMAN_HOST) is None  # rootful: any user
    no_user = dataclasses.replace(spec, container_user=None)
    assert podman_cannot_enforce(no_user, ROOTLESS) is None


# --- sessions ------------------------------------------------------------------------------


def test_a_session_s_execs_and_helper_run_as_the_image_s_user(codex_home: Path) -> None:
    spec = dev_spec("workspace", codex_home)
    assert exec_body(CALL, spec)["User"] == "vscode"
    assert helper_body(spec, ("--signal", "TERM"))["User"] == "vscode"
    plain = fixed_spec("workspace", codex_home=codex_home)
    assert exec_body(CALL, plain)["User"] == "1000:1000"
    assert helper_body(plain, ())["User"] == "1000:1000"


def test_the_user_is_the_spec_s_or_its_ids(codex_home: Path) -> None:
    spec = dataclasses.replace(fixed_spec("offline", codex_home=codex_home), uid=1001, gid=1002)
    assert container.user(spec) == "1001:1002"
    assert container.user(dataclasses.replace(spec, container_user="node")) == "node"
    assert container.user(dataclasses.replace(spec, container_user="")) == "1001:1002"


# --- the native sandbox and auto ------------------------------------------------------------


def test_the_native_sandbox_refuses_a_devcontainer(codex_home: Path) -> None:
    for profile in ("workspace", "trusted"):
        problem = native_cannot_enforce(dev_spec(profile, codex_home))
        assert problem == f"runs no container image: {FILE} needs --backend docker or podman"
    # The same spec without a devcontainer: refused for no devcontainer reason (as a
    # normal user without a cgroup, the default memory cap may be; that is another test's).
    plain = native_cannot_enforce(fixed_spec("workspace", codex_home=codex_home))
    assert plain is None or "container image" not in plain


@pytest.mark.parametrize("profile", ["workspace", "offline", "trusted"])
def test_auto_never_tries_native_for_a_devcontainer(profile: str, codex_home: Path) -> None:
    spec = dev_spec(profile, codex_home)
    assert order_for("auto", spec) == tuple(n for n in base.AUTO_ORDER if n != "native")
    assert "native" not in order_for("auto", spec)
    assert order_for("podman", spec) == ("podman",)
    assert order_for("native", spec) == ("native",)  # asked for: its own refusal says why


def test_without_a_devcontainer_auto_keeps_its_order(codex_home: Path) -> None:
    assert order_for("auto", fixed_spec("workspace", codex_home=codex_home)) == base.AUTO_ORDER
    assert order_for("auto", fixed_spec("trusted", codex_home=codex_home))[0] == "native"
