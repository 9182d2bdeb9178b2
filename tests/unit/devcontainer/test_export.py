"""``devcontainer export``'s plan and text: every built-in profile's settings, the
refusals, a hostile file merged into the hardened container whatever it said, and its
comments kept."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import json5
import pytest

from orchestrator.core.errors import EXIT_REFUSED, ConfigError, Refused
from orchestrator.core.profile import Profile
from orchestrator.devcontainer.export import Plan, check_exportable, plan, render
from orchestrator.devcontainer.export_image import check_dockerfile_labels, check_metadata
from orchestrator.profiles.store import ProfileStore

REF = "${localWorkspaceFolder}/.devcontainer/codex-box-seccomp-x.json"
TARGET = "/workspaces/${localWorkspaceFolderBasename}"
HARDENING = [
    "--read-only",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    f"--security-opt=seccomp={REF}",
    "--pids-limit=4096",
    "--tmpfs=/tmp:rw,nosuid,nodev,mode=1777",
    "--tmpfs=/root:rw,nosuid,nodev,exec,mode=0700",
]
HOSTILE = """\
// My project's dev container
/* block comment, with { braces } and "quotes" */
{
  "name": "hostile", // its name, kept
  'image': 'codex-box/base',
  "build": {"options": ["--network=host"], "args": {"A": "${localEnv:USER}"}},
  "privileged": true,
  "capAdd": ["SYS_ADMIN"],
  "securityOpt": ["seccomp=unconfined", "apparmor=unconfined", "label=disable"],
  "runArgs": ["--network=host", "--env", "A=1", "--pid=host", "-v", "/:/host",
              "--label=x=y", "--privileged", "--device", "/dev/kmsg", "--init",
              "--cap-add", "ALL", "--security-opt", "seccomp=unconfined", "--user", "root",
              "--mount", "type=bind,source=/,target=/h", "--userns=host", "--gpus", "all",
              "--ipc", "host", "--uts=host", "--cgroupns=host", "--volumes-from", "x",
              "--sysctl", "kernel.x=1", "-it", "--privileged=true", "--net", "host",
              "--runtime=runc", "-e=B=2", "--env-file", "/home/me/.aws/env",
              "--label", "codex-box.owner=x", "-l=codex-box.role=y"],
  "mounts": ["source=/var/run/docker.sock,target=/var/run/docker.sock,type=bind",
             {"source": "/", "target": "/host", "type": "bind"}],
  "features": {"ghcr.io/devcontainers/features/docker-in-docker:2": {}},
  "overrideFeatureInstallOrder": ["x"],
  "initializeCommand": "touch /tmp/pwned-on-the-host",
  "workspaceMount": "source=/,target=/workspaces/x,type=bind",
  "workspaceFolder": "/workspaces/x",
  "forwardPorts": [3000],
  "appPort": 8080,
  "hostRequirements": {"gpu": true, "cpus": 2},
  // lifecycle: runs in the container
  "postCreateCommand": "echo ran > /tmp/pc-marker",
  "customizations": {
    // an editor's settings, with a // comment-like "string // here"
    "vscode": {"extensions": ["ms-python.python"], "x": "a, b } ]"},
  },
}
// trailing comment
"""


def builtin(name: str) -> Profile:
    return ProfileStore(codex_home=Path("/nonexistent-codex-home")).get(name)


def planned(name: str, config: dict[str, Any] | None = None, **kw: Any) -> Plan:
    return plan(builtin(name), config or {}, seccomp_ref=REF, **kw)


def test_offline_is_no_network_read_only_workspace_and_nothing_mounted() -> None:
    done = planned("offline")
    assert done.kept == {"image": "codex-box/base"}
    assert done.owned == {
        "workspaceFolder": TARGET,
        "workspaceMount": f"type=bind,source=${{localWorkspaceFolder}},target={TARGET},readonly",
        "runArgs": ["--network=none", *HARDENING],
    }


def test_workspace_writes_the_workspace_with_protected_names_read_only() -> None:
    done = planned("workspace", protected=(".git", ".devcontainer"))
    assert done.owned["workspaceMount"].endswith(f"target={TARGET}")
    assert done.owned["runArgs"] == ["--network=none", *HARDENING]
    assert done.owned["mounts"] == [
        f"type=bind,source=${{localWorkspaceFolder}}/{name},target={TARGET}/{name},readonly"
        for name in (".git", ".devcontainer")
    ]


def test_workspace_net_has_the_engines_bridge_and_keeps_its_ports() -> None:
    done = planned("workspace-net", {"image": "x", "forwardPorts": [3000]})
    assert done.owned["runArgs"] == ["--network=bridge", *HARDENING]
    assert done.kept["forwardPorts"] == [3000]
    assert not planned("workspace", {"image": "x", "forwardPorts": [3000]}).kept.get("forwardPorts")


@pytest.mark.parametrize(
    ("profile", "why"),
    [
        (builtin("trusted"), "is no sandbox"),
        (builtin("net-read-only"), "GET/HEAD/OPTIONS only"),
        (dataclasses.replace(builtin("workspace-net"), allow_domains=("pypi.org",)), "allowlist"),
        (dataclasses.replace(builtin("workspace-net"), deny_domains=("evil.test",)), "denylist"),
        (dataclasses.replace(builtin("workspace-net"), inspect_tls=True), "TLS inspection"),
    ],
)
def test_what_devcontainer_up_cannot_enforce_is_refused(profile: Profile, why: str) -> None:
    with pytest.raises(Refused) as caught:
        check_exportable(profile)
    assert caught.value.exit_code == EXIT_REFUSED
    assert f"profile {profile.name}" in caught.value.message and why in caught.value.message
    with pytest.raises(Refused):
        plan(profile, {}, seccomp_ref=None)


def test_docker_compose_is_refused_runargs_do_not_apply_there() -> None:
    with pytest.raises(Refused, match="dockerComposeFile"):
        planned("workspace", {"dockerComposeFile": "compose.yml", "service": "app"})


def test_a_hostile_file_merges_into_the_hardened_container() -> None:
    config = json5.loads(HOSTILE)
    done = planned("workspace", config, protected=(".git",))
    merged = done.config
    for key in ("privileged", "capAdd", "securityOpt", "features", "initializeCommand",
                "overrideFeatureInstallOrder", "forwardPorts", "appPort"):  # fmt: skip
        assert key not in merged, key
    assert merged["mounts"] == [
        "type=bind,source=${localWorkspaceFolder}/.git,target=/workspaces/x/.git,readonly"
    ]
    assert (
        merged["workspaceMount"] == "type=bind,source=${localWorkspaceFolder},target=/workspaces/x"
    )
    assert merged["workspaceFolder"] == "/workspaces/x"
    assert merged["hostRequirements"] == {"cpus": 2}
    assert merged["build"] == {"args": {"A": "${localEnv:USER}"}}
    # The file's harmless runArgs first, then the profile's: nothing else of the file's.
    assert merged["runArgs"] == [
        "--env", "A=1", "--label=x=y", "--init", "-e=B=2",
        "--network=none", *HARDENING,
    ]  # fmt: skip
    assert merged["postCreateCommand"] == "echo ran > /tmp/pc-marker"
    assert merged["customizations"] == config["customizations"]
    notes = "\n".join(done.notes)
    gone = ["privileged", "capAdd", "features", "initializeCommand", "mounts", "runArgs -v /:/host",
            "runArgs --privileged", "runArgs --network=host", "runArgs --user root",
            "runArgs --cap-add ALL", "hostRequirements.gpu", "build.options",
            "runArgs --env-file /home/me/.aws/env", "runArgs --label codex-box.owner=x",
            "runArgs -l=codex-box.role=y"]  # fmt: skip
    for key in gone:
        assert f"removed {key}" in notes, key


@pytest.mark.parametrize(
    "args",
    [["--privileged"], ["--cap-add", "SYS_ADMIN"], ["--network", "host"], ["--net=host"],
     ["-v", "/:/h"], ["--volume=/etc:/e"], ["--mount", "type=bind,src=/,dst=/h"],
     ["--security-opt", "seccomp=unconfined"], ["--security-opt=apparmor=unconfined"],
     ["--device=/dev/kvm"], ["--pid", "host"], ["--userns=host"], ["-u", "0"],
     ["--cap-drop=NONE"], ["--read-only=false"], ["--tmpfs", "/x"], ["--ulimit", "nproc=-1"],
     ["-itv", "/:/h"], ["--oom-kill-disable"], ["--cgroup-parent=/"]],
)  # fmt: skip
def test_no_run_argument_of_the_file_but_the_harmless_ones_survives(args: list[str]) -> None:
    ours = planned("offline").owned["runArgs"]
    done = planned("offline", {"image": "x", "runArgs": ["--init", *args]})
    assert done.owned["runArgs"] == ["--init", *ours]


def test_the_remote_users_home_is_writable_for_the_clis_markers() -> None:
    def home(config: dict[str, Any]) -> str:
        return str(planned("offline", {"image": "x", **config}).owned["runArgs"][-1])

    assert home({}) == home({"remoteUser": "root"}) == HARDENING[-1]
    # Another user: the CLI's data folder only (its uid is unknown here; see _home).
    assert home({"remoteUser": "vscode"}) == (
        "--tmpfs=/home/vscode/.devcontainer:rw,nosuid,nodev,mode=1777"
    )
    assert home({"containerUser": "node"}).startswith("--tmpfs=/home/node/.devcontainer:")
    assert "/home/dev/" in home({"remoteUser": "dev", "containerUser": "root"})
    assert "no remoteUser" in planned("offline").notes[-1]
    for bad in ("1000", "1000:1000", "${localEnv:USER}", "a/b"):
        with pytest.raises(ConfigError, match="not a user name"):
            planned("offline", {"image": "x", "remoteUser": bad})


def test_a_file_without_image_gets_the_one_given_or_codex_boxs() -> None:
    assert planned("offline", image="debian:bookworm").kept["image"] == "debian:bookworm"
    assert planned("workspace-net", {"build": {"dockerfile": "Dockerfile"}}).kept == {
        "build": {"dockerfile": "Dockerfile"}
    }


def test_a_build_without_the_profiles_network_gets_none_and_pulls_no_cache() -> None:
    """The CLI passes build.options to docker build: the RUN steps of an offline build
    get no network (as run --devcontainer builds), and no cacheFrom image is pulled."""
    done = planned("offline", {"build": {"dockerfile": "D", "cacheFrom": "evil/cache",
                                         "options": ["--network=host"]}})  # fmt: skip
    assert done.kept == {"build": {"dockerfile": "D", "options": ["--network=none"]}}
    assert "removed build.cacheFrom: the build would pull it from a registry" in done.notes
    legacy = planned("workspace", {"dockerFile": "D", "context": ".."})
    assert legacy.kept == {"build": {"dockerfile": "D", "context": "..",
                                     "options": ["--network=none"]}}  # fmt: skip
    net = planned("workspace-net", {"build": {"dockerfile": "D", "cacheFrom": ["c"]}})
    assert net.kept == {"build": {"dockerfile": "D"}}


def test_render_keeps_the_files_comments_and_reads_back_as_the_plan() -> None:
    profile = builtin("workspace")
    done = planned("workspace", json5.loads(HOSTILE))
    text, lost = render(done, profile, HOSTILE)
    assert lost == []
    assert json5.loads(text) == done.config
    lines = text.splitlines()
    assert lines[0].startswith("// codex-box devcontainer export --profile workspace: ")
    assert lines[1:3] == [
        "// My project's dev container",
        '/* block comment, with { braces } and "quotes" */',
    ]
    for kept in ('"name": "hostile", // its name, kept', "  'image': 'codex-box/base',",
                 "// lifecycle: runs in the container", "// an editor's settings",
                 "// trailing comment", "// codex-box: profile workspace's settings"):  # fmt: skip
        assert kept in text, kept
    for gone in ("privileged", "docker-in-docker", "pwned", "docker.sock", "SYS_ADMIN"):
        assert gone not in text, gone
    # Exporting again changes nothing: one header, one banner, the same keys.
    again, _ = render(plan(profile, json5.loads(text), seccomp_ref=REF), profile, text)
    assert again == text


def test_render_of_a_new_file_and_of_one_it_cannot_split() -> None:
    profile = builtin("offline")
    text, lost = render(planned("offline"), profile)
    assert lost == [] and json5.loads(text) == planned("offline").config
    assert text.startswith("// codex-box devcontainer export --profile offline: ")
    # A repeated key: the parser keeps the last; the text cannot be split by member.
    odd = '// mine\n{"image": "a", /* c */ "image": "b"}'
    done = planned("offline", json5.loads(odd))
    text, lost = render(done, profile, odd)
    assert json5.loads(text) == done.config and done.config["image"] == "b"
    assert "// mine" in text and "/* c */" not in text
    assert lost == ["comments inside the object were not kept"]
    # Without comments inside, nothing is said to be lost (a "/" in a value is no comment).
    plain = '{"image": "a/b", "x": 1, "x": 2}'
    assert render(planned("offline", json5.loads(plain)), profile, plain)[1] == []


@pytest.mark.parametrize(
    "config",
    [{"containerEnv": {"T": "${localEnv:GITHUB_TOKEN}"}},
     {"containerEnv": {"T": "${env:GITHUB_TOKEN}"}},  # the CLI's alias
     {"runArgs": ["--env", "T=${localEnv:AWS_SECRET_ACCESS_KEY}"]},
     {"postCreateCommand": ["echo", "${localEnv:NPM_TOKEN:default}"]},
     {"workspaceFolder": "/w/${localEnv:NPM_TOKEN}"},  # popped by the plan: checked first
     {"initializeCommand": "echo ${env:NPM_TOKEN}"}],  # removed, but refused all the same
)  # fmt: skip
def test_a_host_variable_the_cli_would_copy_in_is_refused(config: dict[str, Any]) -> None:
    with pytest.raises(Refused, match=r"names the host variable [A-Z_]+: the Dev Containers CLI"):
        planned("workspace", {"image": "x", **config})
    home = planned("offline", {"image": "x", "containerEnv": {"H": "${localEnv:HOME}/x"}})
    assert home.kept["containerEnv"] == {"H": "${localEnv:HOME}/x"}


def test_a_host_variable_only_another_parser_sees_is_refused() -> None:
    """json5 reads a single-quoted member the CLI's jsonc-parser reads otherwise: the
    file's text is searched as written."""
    text = """{"image": "x", 'n': 'a", "containerEnv": {"T": "${env:GITHUB_TOKEN}"}, "b'}"""
    config = json5.loads(text)
    assert "containerEnv" not in config
    with pytest.raises(Refused, match="GITHUB_TOKEN"):
        planned("workspace", config, text=text)


@pytest.mark.parametrize(
    "args",
    [["--env", "GITHUB_TOKEN"], ["-e", "GITHUB_TOKEN"], ["-e=GITHUB_TOKEN"],
     ["--env=GITHUB_TOKEN"], ["-eGITHUB_TOKEN"]],
)  # fmt: skip
def test_an_env_run_argument_without_a_value_is_refused(args: list[str]) -> None:
    """docker copies the caller's variable for ``--env NAME``: the host's secret."""
    with pytest.raises(Refused, match=r"runArgs .*GITHUB_TOKEN refused: it passes the host's"):
        planned("offline", {"image": "x", "runArgs": ["--init", *args]})
    kept = planned("offline", {"image": "x", "runArgs": ["--env", "A=1", "-e=B=2"]})
    assert kept.owned["runArgs"][:3] == ["--env", "A=1", "-e=B=2"]


def test_the_clis_own_labels_are_not_overridden() -> None:
    args = ["--label", "devcontainer.local_folder=/elsewhere", "-l=devcontainer.config_file=/x",
            "--label=devcontainer.metadata=[]", "--label", "mine=1"]  # fmt: skip
    done = planned("offline", {"image": "x", "runArgs": args})
    assert done.owned["runArgs"][:2] == ["--label", "mine=1"]
    notes = "\n".join(done.notes)
    for gone in ("--label devcontainer.local_folder=/elsewhere", "-l=devcontainer.config_file",
                 "--label=devcontainer.metadata=[]"):  # fmt: skip
        assert f"removed runArgs {gone}" in notes, gone


@pytest.mark.parametrize(
    ("metadata", "words"),
    [('[{"capAdd": ["SYS_ADMIN"]}]', "capAdd"), ('[{"privileged": true}]', "privileged"),
     ('{"securityOpt": ["seccomp=unconfined"]}', "securityOpt"),  # one object, not an array
     ('[{}, {"mounts": ["type=bind,source=/,target=/h"]}]', "mounts"),
     ('[{"init": true}]', "init"), ('[{"hostRequirements": {"gpu": true}}]', "gpu"),
     ('[{"privil\\u0065ged": true}]', "privileged"),  # JSON.parse reads the escape too
     ('[{"containerEnv": {"T": "${localEnv:GITHUB_TOKEN}"}}]', "GITHUB_TOKEN"),
     ('[{"remoteEnv": {"T": "${env:GITHUB_TOKEN}"}}]', "GITHUB_TOKEN"),
     ("[{'capAdd': 1}]", "not JSON"), ('[{"a": NaN}]', "not JSON"), ("[1]", "not an object")],
)  # fmt: skip
def test_an_image_whose_metadata_loosens_the_container_is_refused(
    metadata: str, words: str
) -> None:
    with pytest.raises(Refused, match=f"image img's devcontainer.metadata label .*{words}"):
        check_metadata("img", metadata.replace("\\\\", "\\"))


def test_an_image_whose_metadata_only_describes_is_kept() -> None:
    check_metadata("img", None)
    check_metadata(
        "img",
        '[{"id": "x", "remoteUser": "vscode", "containerEnv": {"H": "${localEnv:HOME}"},'
        ' "postCreateCommand": "echo", "privileged": false, "capAdd": []}]',
    )


@pytest.mark.parametrize(
    "dockerfile",
    ["FROM x\nLABEL devcontainer.metadata='[{\"privileged\": true}]'\n",
     'FROM x\nLABEL "devcontainer.\\\n  metadata"="[]"\n',  # split by a continuation
     "FROM x\nARG K=dev\nLABEL ${K}container.metadata=[]\n",
     "FROM x\nONBUILD LABEL $K=1\n"],
)  # fmt: skip
def test_a_dockerfile_that_may_write_the_metadata_label_is_refused(dockerfile: str) -> None:
    with pytest.raises(Refused, match=r"devcontainer\.metadata|uses a variable"):
        check_dockerfile_labels("Dockerfile", dockerfile)
    check_dockerfile_labels("Dockerfile", "FROM x\nLABEL org.opencontainers.image.title=x\n")


def test_a_workspace_folder_with_a_comma_cannot_be_a_mount_target() -> None:
    relative = planned("offline", {"image": "x", "workspaceFolder": "src"})
    assert relative.owned["workspaceFolder"] == TARGET
    assert "replaced workspaceFolder 'src': not an absolute path" in relative.notes
    with pytest.raises(ConfigError, match="comma"):
        planned("offline", {"image": "x", "workspaceFolder": "/w,readonly=false"})
