"""The profile wins on every security setting of a devcontainer.json: each loosening key
refused with its name and value, harmless ones passing, unknown run arguments refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.devcontainer.vetting import CHANGED, REFUSED, refused, vet
from orchestrator.profiles.store import ProfileStore

HOME, CODEX_HOME = "/home/alice", "/home/alice/.codex"


def findings(config: dict[str, Any], profile: str = "workspace") -> list[tuple[str, str, str]]:
    store = ProfileStore(codex_home=Path("/nonexistent-codex-home"))
    found = vet(config, store.get(profile), home=HOME, codex_home=CODEX_HOME)
    return [(f.key, f.value, f.action) for f in found]


@pytest.mark.parametrize(
    ("config", "key", "value"),
    [
        ({"privileged": True}, "privileged", "True"),
        ({"capAdd": ["SYS_ADMIN", "NET_ADMIN"]}, "capAdd[1]", "NET_ADMIN"),
        ({"securityOpt": ["seccomp=unconfined"]}, "securityOpt[0]", "seccomp=unconfined"),
        ({"securityOpt": ["apparmor:unconfined"]}, "securityOpt[0]", "apparmor:unconfined"),
        ({"securityOpt": ["label=disable"]}, "securityOpt[0]", "label=disable"),
        ({"runArgs": ["--privileged"]}, "runArgs[0]", "--privileged"),
        ({"runArgs": ["--cap-add", "SYS_PTRACE"]}, "runArgs[0]", "--cap-add SYS_PTRACE"),
        ({"runArgs": ["--cap-add=ALL"]}, "runArgs[0]", "--cap-add=ALL"),
        ({"runArgs": ["--network=host"]}, "runArgs[0]", "--network=host"),
        ({"runArgs": ["--net", "host"]}, "runArgs[0]", "--net host"),
        ({"runArgs": ["--pid=host"]}, "runArgs[0]", "--pid=host"),
        ({"runArgs": ["--ipc=host"]}, "runArgs[0]", "--ipc=host"),
        ({"runArgs": ["--userns=host"]}, "runArgs[0]", "--userns=host"),
        ({"runArgs": ["--device", "/dev/kvm"]}, "runArgs[0]", "--device /dev/kvm"),
        (
            {"runArgs": ["-v", "/var/run/docker.sock:/var/run/docker.sock"]},
            "runArgs[0]",
            "-v /var/run/docker.sock:/var/run/docker.sock",
        ),
        ({"runArgs": ["--volume=/:/host"]}, "runArgs[0]", "--volume=/:/host"),
        ({"runArgs": ["--frobnicate"]}, "runArgs[0]", "--frobnicate"),
        (
            {"mounts": ["source=/run/podman/podman.sock,target=/s,type=bind"]},
            "mounts[0]",
            "source=/run/podman/podman.sock,target=/s,type=bind",
        ),
        (
            {"mounts": ["source=/etc,target=/e,type=bind"]},
            "mounts[0]",
            "source=/etc,target=/e,type=bind",
        ),
        (
            {"mounts": ["source=${localEnv:HOME}/.ssh,target=/s,type=bind"]},
            "mounts[0]",
            "source=${localEnv:HOME}/.ssh,target=/s,type=bind",
        ),
        (
            {"mounts": [{"source": CODEX_HOME, "target": "/c", "type": "bind"}]},
            "mounts[0]",
            f"source={CODEX_HOME},target=/c,type=bind",
        ),
        (
            {"mounts": ["source=${localEnv:AWS_DIR},target=/a,type=bind"]},
            "mounts[0]",
            "source=${localEnv:AWS_DIR},target=/a,type=bind",
        ),
        ({"forwardPorts": [3000]}, "forwardPorts", "[3000]"),
    ],
)
def test_each_loosening_key_is_refused_by_name_and_value(
    config: dict[str, Any], key: str, value: str
) -> None:
    assert (key, value, REFUSED) in findings(config)


def test_trusted_refuses_nothing() -> None:
    assert findings({"privileged": True, "runArgs": ["--network=host"]}, "trusted") == []


def test_harmless_run_arguments_and_mounts_pass() -> None:
    config = {
        "image": "debian",
        "runArgs": ["--init", "--env", "A=1", "-e", "B=2", "--label=x=y", "--shm-size", "1g",
                    "--hostname", "box", "--rm"],
        "mounts": ["source=vol,target=/data,type=volume",
                   "source=${localWorkspaceFolder}/cache,target=/c,type=bind"],
        "containerEnv": {"A": "1"},
        "securityOpt": ["no-new-privileges"],
    }  # fmt: skip
    assert findings(config) == []


def test_a_network_that_is_not_the_host_s_is_the_profile_s_to_decide() -> None:
    assert findings({"runArgs": ["--network", "bridge"]}) == [
        ("runArgs[0]", "--network bridge", CHANGED)
    ]


def test_forward_ports_pass_with_network_and_the_workspace_mount_goes_read_only() -> None:
    assert findings({"forwardPorts": [3000]}, "workspace-net") == []
    mount = "source=${localWorkspaceFolder},target=/w,type=bind"
    assert findings({"workspaceMount": mount}, "offline") == [("workspaceMount", mount, CHANGED)]
    assert findings({"workspaceMount": mount}, "workspace") == []


def test_a_value_after_a_harmless_flag_is_not_read_as_a_flag() -> None:
    # `--env --privileged` sets a variable named --privileged, it does not add the flag.
    assert findings({"runArgs": ["--env", "--privileged"]}) == []
    store = ProfileStore(codex_home=Path("/nonexistent-codex-home"))
    found = vet(
        {"runArgs": ["--privileged"]}, store.get("offline"), home=HOME, codex_home=CODEX_HOME
    )
    assert [f.line() for f in refused(found)] == [
        "runArgs[0] --privileged: refused — a privileged container is the host's root"
    ]
