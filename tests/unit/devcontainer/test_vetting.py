"""The profile wins on every security setting of a devcontainer.json: each loosening key
refused with its name and value, host variables refused where they are written, what
codex-box decides itself reported as changed, unknown run arguments refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.devcontainer.vetting import CHANGED, REFUSED, Mount, mounts_of, refused, vet
from orchestrator.profiles.store import ProfileStore

HOME, CODEX_HOME = "/home/alice", "/home/alice/.codex"
WORKSPACE = "/home/alice/proj"
STORE = ProfileStore(codex_home=Path("/nonexistent-codex-home"))


def findings(
    config: dict[str, Any],
    profile: str = "workspace",
    *,
    workspace: str = WORKSPACE,
    raw: dict[str, Any] | None = None,
) -> list[tuple[str, str, str]]:
    found = vet(
        config, STORE.get(profile), home=HOME, codex_home=CODEX_HOME, workspace=workspace, raw=raw
    )
    return [(f.key, f.value, f.action) for f in found]


def refusals(config: dict[str, Any], profile: str = "workspace") -> list[tuple[str, str]]:
    return [(key, value) for key, value, action in findings(config, profile) if action == REFUSED]


# --- refused -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "key", "value"),
    [
        ({"privileged": True}, "privileged", "True"),
        ({"capAdd": ["SYS_ADMIN", "NET_ADMIN"]}, "capAdd[1]", "NET_ADMIN"),
        ({"capAdd": "SYS_ADMIN"}, "capAdd[0]", "SYS_ADMIN"),
        ({"securityOpt": ["seccomp=unconfined"]}, "securityOpt[0]", "seccomp=unconfined"),
        ({"securityOpt": ["apparmor:unconfined"]}, "securityOpt[0]", "apparmor:unconfined"),
        ({"securityOpt": ["label=disable"]}, "securityOpt[0]", "label=disable"),
        ({"securityOpt": ["no-new-privileges=false"]}, "securityOpt[0]",
         "no-new-privileges=false"),
        ({"securityOpt": ["systempaths=unconfined"]}, "securityOpt[0]", "systempaths=unconfined"),
        ({"securityOpt": ["Seccomp = Unconfined"]}, "securityOpt[0]", "Seccomp = Unconfined"),
        ({"runArgs": ["--privileged"]}, "runArgs[0]", "--privileged"),
        ({"runArgs": ["--cap-add", "SYS_PTRACE"]}, "runArgs[0]", "--cap-add SYS_PTRACE"),
        ({"runArgs": ["--cap-add=ALL"]}, "runArgs[0]", "--cap-add=ALL"),
        ({"runArgs": ["--network=host"]}, "runArgs[0]", "--network=host"),
        ({"runArgs": ["--net", "host"]}, "runArgs[0]", "--net host"),
        ({"runArgs": ["--network=container:x"]}, "runArgs[0]", "--network=container:x"),
        ({"runArgs": ["--net=ns:/proc/1/ns/net"]}, "runArgs[0]", "--net=ns:/proc/1/ns/net"),
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
        ({"runArgs": ["--env-file", ".env"]}, "runArgs[0]", "--env-file .env"),
        ({"runArgs": ["--volumes-from=db"]}, "runArgs[0]", "--volumes-from=db"),
        ({"runArgs": ["--runtime", "runc"]}, "runArgs[0]", "--runtime runc"),
        ({"runArgs": ["--cgroup-parent=/x"]}, "runArgs[0]", "--cgroup-parent=/x"),
        ({"runArgs": ["--frobnicate"]}, "runArgs[0]", "--frobnicate"),
        ({"runArgs": "--privileged"}, "runArgs[0]", "--privileged"),  # a string, not an array
        (
            {"mounts": ["source=/run/podman/podman.sock,target=/s,type=bind"]},
            "mounts[0]",
            "source=/run/podman/podman.sock,target=/s,type=bind",
        ),
        (
            {"mounts": ["source=/var/run,target=/r,type=bind"]},
            "mounts[0]",
            "source=/var/run,target=/r,type=bind",
        ),
        (
            {"mounts": ["source=/etc,target=/e,type=bind"]},
            "mounts[0]",
            "source=/etc,target=/e,type=bind",
        ),
        (
            {"mounts": ["source=/,target=/host,type=bind"]},
            "mounts[0]",
            "source=/,target=/host,type=bind",
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
            {"mounts": ["source=/srv/data,target=/d,type=bind"]},  # outside: not granted
            "mounts[0]",
            "source=/srv/data,target=/d,type=bind",
        ),
        (
            {"mounts": ["source=${localWorkspaceFolder}/../other,target=/o,type=bind"]},
            "mounts[0]",
            "source=${localWorkspaceFolder}/../other,target=/o,type=bind",
        ),
        (
            {"mounts": [f"source={WORKSPACE}/docker.sock,target=/s,type=bind"]},
            "mounts[0]",
            f"source={WORKSPACE}/docker.sock,target=/s,type=bind",
        ),
        (
            {"mounts": ["source=x,target=relative,type=volume"]},
            "mounts[0]",
            "source=x,target=relative,type=volume",
        ),
        (
            {"mounts": ["type=npipe,source=x,target=/p"]},
            "mounts[0]",
            "type=npipe,source=x,target=/p",
        ),
        ({"forwardPorts": [3000]}, "forwardPorts", "[3000]"),
        ({"appPort": [8080, "9000:9000"]}, "appPort", "[8080, '9000:9000']"),
        ({"appPort": 8080}, "appPort", "8080"),
        ({"initializeCommand": "cp ~/.aws/credentials ."}, "initializeCommand",
         "cp ~/.aws/credentials ."),
        ({"initializeCommand": ["sh", "-c", "id"]}, "initializeCommand", "['sh', '-c', 'id']"),
        ({"features": {"ghcr.io/devcontainers/features/node:1": {}}}, "features",
         "{'ghcr.io/devcontainers/features/node:1': {}}"),
        ({"dockerComposeFile": "compose.yml", "service": "app"}, "dockerComposeFile",
         "compose.yml"),
        ({"dockerComposeFile": ["a.yml", "b.yml"]}, "dockerComposeFile", "['a.yml', 'b.yml']"),
        ({"build": {"dockerfile": "Dockerfile", "options": ["--network=host"]}}, "build.options",
         "['--network=host']"),
    ],
)  # fmt: skip
def test_each_loosening_key_is_refused_by_name_and_value(
    config: dict[str, Any], key: str, value: str
) -> None:
    assert (key, value, REFUSED) in findings(config)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"containerEnv": {"T": "${localEnv:GITHUB_TOKEN}"}}, "containerEnv.T"),
        ({"remoteEnv": {"A": "x ${localEnv:AWS_SECRET_ACCESS_KEY}"}}, "remoteEnv.A"),
        ({"build": {"dockerfile": "D", "args": {"TOKEN": "${localEnv:NPM_TOKEN}"}}},
         "build.args.TOKEN"),
        ({"runArgs": ["--init", "--env", "K=${localEnv:SECRET}"]}, "runArgs[2]"),
        ({"postCreateCommand": "curl -H 'x: ${localEnv:SECRET}' ..."}, "postCreateCommand"),
        ({"postStartCommand": {"a": ["echo", "${env:SECRET}"]}}, "postStartCommand.a[1]"),
        ({"image": "registry/${localEnv:SECRET}"}, "image"),
    ],
)  # fmt: skip
def test_a_host_variable_anywhere_is_refused_with_its_key_path(
    config: dict[str, Any], key: str
) -> None:
    refused_keys = [k for k, _, action in findings(config) if action == REFUSED]
    assert refused_keys[0] == key
    name = next(
        f for f in vet(config, STORE.get("workspace"), home=HOME, codex_home=CODEX_HOME)
        if f.key == key
    )  # fmt: skip
    assert name.value.startswith("${localEnv:") and "reaches a sandbox only by --env" in name.why


@pytest.mark.parametrize(
    "config",
    [
        {"containerEnv": {"H": "${localEnv:HOME}/.cache", "U": "${localEnv:USER}"}},
        {"remoteEnv": {"P": "${containerEnv:PATH}:/x"}},
        {"postCreateCommand": "echo ${localWorkspaceFolder} ${localEnv:USERNAME}"},
        {"build": {"dockerfile": "D", "args": {"HOME_DIR": "${env:HOME}"}}},
    ],
)
def test_the_user_s_name_and_home_and_the_workspace_pass(config: dict[str, Any]) -> None:
    assert refusals(config) == []


def test_host_variables_are_looked_for_in_the_file_as_written() -> None:
    # What the CLI made (substituted) looks harmless; the file as written is not.
    config = {"containerEnv": {"T": "ghp_xxx"}}
    raw = {"containerEnv": {"T": "${localEnv:GITHUB_TOKEN}"}}
    assert ("containerEnv.T", "${localEnv:GITHUB_TOKEN}", REFUSED) in findings(config, raw=raw)
    assert findings(config, raw={"containerEnv": {"T": "${localEnv:HOME}"}}) == []


def test_trusted_refuses_nothing() -> None:
    config = {
        "privileged": True,
        "runArgs": ["--network=host"],
        "initializeCommand": "id",
        "containerEnv": {"T": "${localEnv:GITHUB_TOKEN}"},
        "mounts": ["source=/,target=/host,type=bind"],
    }
    assert findings(config, "trusted") == []


def test_the_first_refusal_line() -> None:
    found = vet(
        {"runArgs": ["--privileged"]}, STORE.get("offline"), home=HOME, codex_home=CODEX_HOME
    )
    assert [f.line() for f in refused(found)] == [
        "runArgs[0] --privileged: refused — a privileged container is the host's root"
    ]


# --- changed -------------------------------------------------------------------------------


def test_harmless_run_arguments_are_applied_or_changed() -> None:
    config = {
        "image": "debian",
        "runArgs": ["--init", "--env", "A=1", "-e", "B=2", "-eC=3", "--label=x=y", "--shm-size",
                    "1g", "--hostname", "box", "--rm", "-u", "vscode"],
        "containerEnv": {"A": "1"},
    }  # fmt: skip
    assert findings(config) == [
        ("runArgs[0]", "--init", CHANGED),
        ("runArgs[7]", "--shm-size 1g", CHANGED),
        ("runArgs[11]", "--rm", CHANGED),
    ]


def test_a_value_after_a_harmless_flag_is_not_read_as_a_flag() -> None:
    # `--env --privileged` names a variable --privileged (refused: with no value it would
    # be the host's), it does not add the flag.
    assert findings({"runArgs": ["--env", "--privileged"]}) == [
        ("runArgs[0]", "--env --privileged", REFUSED)
    ]


def test_a_network_that_is_not_the_host_s_is_the_profile_s_to_decide() -> None:
    assert findings({"runArgs": ["--network", "bridge"]}) == [
        ("runArgs[0]", "--network bridge", CHANGED)
    ]


def test_a_security_option_that_does_not_loosen_is_the_profile_s() -> None:
    assert findings({"securityOpt": ["no-new-privileges"]}) == [
        ("securityOpt[0]", "no-new-privileges", CHANGED)
    ]


def test_volumes_become_private_tmpfs_and_binds_inside_the_workspace_are_there_already() -> None:
    config = {
        "mounts": [
            "source=vol,target=/data,type=volume",
            "target=/cache",  # no type: docker --mount's default, a volume
            {"type": "tmpfs", "target": "/scratch"},
            "source=${localWorkspaceFolder}/cache,target=/c,type=bind",
            f"source={WORKSPACE},target=/w,type=bind",
            "src=${localWorkspaceFolder}/a/../b,dst=/b,type=bind",
        ]
    }
    found = vet(config, STORE.get("workspace"), home=HOME, codex_home=CODEX_HOME,
                workspace=WORKSPACE)  # fmt: skip
    assert [(f.key, f.action) for f in found] == [(f"mounts[{i}]", CHANGED) for i in range(6)]
    assert found[0].why == "a private tmpfs at /data: nothing persists between sandboxes"
    assert found[3].why == "already in the sandbox at its host path; not bound again"


def test_a_profile_that_writes_no_scratch_refuses_volumes() -> None:
    assert findings({"mounts": ["source=vol,target=/data,type=volume"]}, "offline") == [
        ("mounts[0]", "source=vol,target=/data,type=volume", REFUSED)
    ]


def test_without_a_workspace_a_workspace_bind_cannot_be_told_inside() -> None:
    bind = "source=${localWorkspaceFolder}/cache,target=/c,type=bind"
    assert findings({"mounts": [bind]}, workspace="") == [("mounts[0]", bind, REFUSED)]


def test_ports_are_not_forwarded_with_network_and_refused_without() -> None:
    assert findings({"forwardPorts": [3000], "appPort": 8080}, "workspace-net") == [
        ("forwardPorts", "[3000]", CHANGED),
        ("appPort", "8080", CHANGED),
    ]
    assert findings({"forwardPorts": [3000]}, "offline") == [("forwardPorts", "[3000]", REFUSED)]
    assert findings({"forwardPorts": []}, "offline") == []


def test_the_workspace_stays_at_its_host_path() -> None:
    mount = "source=${localWorkspaceFolder},target=/w,type=bind"
    found = vet({"workspaceMount": mount, "workspaceFolder": "/w"}, STORE.get("offline"),
                home=HOME, codex_home=CODEX_HOME, workspace=WORKSPACE)  # fmt: skip
    assert [(f.key, f.action) for f in found] == [
        ("workspaceFolder", CHANGED),
        ("workspaceMount", CHANGED),
    ]
    assert found[0].why == f"the workspace is at its host path {WORKSPACE}, read-only under offline"
    writer = findings({"workspaceFolder": "/w"}, "workspace")
    assert writer == [("workspaceFolder", "/w", CHANGED)]


def test_a_workspace_folder_only_the_cli_added_is_not_reported() -> None:
    # read-configuration always answers a workspaceFolder; the file did not set it.
    assert findings({"workspaceFolder": WORKSPACE}, raw={"image": "x"}) == []
    assert findings({"workspaceFolder": WORKSPACE}, raw={"workspaceFolder": "/w"}) == [
        ("workspaceFolder", WORKSPACE, CHANGED)
    ]


def test_findings_host_variables_first_then_each_rule_s_in_order() -> None:
    config = {
        "initializeCommand": "x",
        "privileged": True,
        "runArgs": ["--init", "--cap-add", "X"],
        "mounts": ["target=/v"],
        "forwardPorts": [1],
        "workspaceFolder": "/w",
        "containerEnv": {"T": "${localEnv:TOKEN}"},
    }
    assert [(k, a) for k, _, a in findings(config)] == [
        ("containerEnv.T", REFUSED),
        ("initializeCommand", REFUSED),
        ("privileged", REFUSED),
        ("runArgs[0]", CHANGED),
        ("runArgs[1]", REFUSED),
        ("mounts[0]", CHANGED),
        ("forwardPorts", REFUSED),
        ("workspaceFolder", CHANGED),
    ]


# --- mounts as the engine reads them -------------------------------------------------------


def test_a_mount_string_and_object() -> None:
    text = Mount("type=bind, source=/a ,target=/b,readonly")
    assert (text.kind, text.source, text.target) == ("bind", "/a", "/b")
    short = Mount("src=/a,dst=/b,type=bind")
    assert (short.source, short.target) == ("/a", "/b")
    obj = Mount({"Type": "volume", "Source": "v", "Destination": "/d"})
    assert (obj.kind, obj.source, obj.target) == ("volume", "v", "/d")
    assert Mount("target=/x").kind == "volume"


def test_mounts_of_a_config() -> None:
    assert [m.target for m in mounts_of({"mounts": ["target=/a", {"target": "/b"}]})] == [
        "/a",
        "/b",
    ]
    assert mounts_of({}) == [] and mounts_of({"mounts": "target=/a"}) == []
