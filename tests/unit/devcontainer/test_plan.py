"""``plan``: a vetted devcontainer configuration → what a codex-box launch takes (image
or build, environment, user, hostname, labels, tmpfs, lifecycle commands), or the
refusal (126) naming the first refused key with its value."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.compile.spec import Request, compile_spec
from orchestrator.core.errors import EXIT_REFUSED, ConfigError, Refused
from orchestrator.devcontainer.findings import CHANGED
from orchestrator.devcontainer.plan import Build, Plan, plan
from orchestrator.devcontainer.reading import Loaded, _normalised
from orchestrator.profiles.store import ProfileStore

HOME, CODEX_HOME = "/home/alice", "/home/alice/.codex"
WORKSPACE = "/home/alice/proj"
FILE = Path(WORKSPACE) / ".devcontainer" / "devcontainer.json"
ENVIRON = {
    "PATH": "/usr/bin:/bin",
    "HOME": HOME,
    "USER": "alice",
    "LANG": "C.UTF-8",
    "GITHUB_TOKEN": "ghp_not_for_the_sandbox",
}
STORE = ProfileStore(codex_home=Path("/nonexistent-codex-home"))


def planned(
    config: dict[str, Any],
    profile: str = "workspace",
    *,
    raw: dict[str, Any] | None = None,
    file: Path = FILE,
    workspace: str = WORKSPACE,
    environ: dict[str, str] | None = None,
) -> Plan:
    loaded = Loaded(
        file=file,
        workspace=workspace,
        raw=config if raw is None else raw,
        config=config,
        via="json5" if raw is None else "devcontainer CLI",
    )
    return plan(
        loaded,
        STORE.get(profile),
        home=HOME,
        codex_home=CODEX_HOME,
        environ=ENVIRON if environ is None else environ,
    )


# --- image and build -----------------------------------------------------------------------


def test_an_image_configuration() -> None:
    made = planned({"image": "mcr.microsoft.com/devcontainers/base:debian"})
    assert made == Plan(
        file=str(FILE),
        image="mcr.microsoft.com/devcontainers/base:debian",
        build=None,
        env=(),
        user=None,
        hostname=None,
        labels=(),
        tmpfs=(),
        lifecycle=(),
        findings=(),
    )


def test_a_dockerfile_build_is_resolved_from_the_json_s_folder() -> None:
    made = planned(
        {
            "build": {
                "dockerfile": "Dockerfile",
                "context": "..",
                "args": {"VARIANT": "3.12", "NAME": "${localWorkspaceFolderBasename}"},
                "target": "dev",
            }
        }
    )
    assert made.image is None
    assert made.build == Build(
        dockerfile=f"{WORKSPACE}/.devcontainer/Dockerfile",
        context=WORKSPACE,
        args=(("VARIANT", "3.12"), ("NAME", "proj")),
        target="dev",
    )


def test_a_build_s_defaults_and_a_relative_dockerfile_elsewhere() -> None:
    made = planned({"build": {"dockerfile": "../docker/dev.Dockerfile"}})
    assert made.build == Build(
        dockerfile=f"{WORKSPACE}/docker/dev.Dockerfile",
        context=f"{WORKSPACE}/.devcontainer",  # context "." is the json's folder
    )
    assert planned({"build": {}}).build == Build(
        dockerfile=f"{WORKSPACE}/.devcontainer/Dockerfile", context=f"{WORKSPACE}/.devcontainer"
    )


def test_the_spec_s_old_spelling_dockerfile_at_the_top() -> None:
    made = planned({"dockerFile": "Dockerfile", "context": ".."})
    assert made.image is None
    assert made.build == Build(
        dockerfile=f"{WORKSPACE}/.devcontainer/Dockerfile", context=WORKSPACE
    )
    inner = planned({"build": {"dockerFile": "x/Dockerfile"}})
    assert inner.build is not None
    assert inner.build.dockerfile == f"{WORKSPACE}/.devcontainer/x/Dockerfile"


def test_a_root_level_devcontainer_json_resolves_from_the_workspace() -> None:
    made = planned(
        {"build": {"dockerfile": "Dockerfile"}}, file=Path(WORKSPACE, ".devcontainer.json")
    )
    assert made.build == Build(dockerfile=f"{WORKSPACE}/Dockerfile", context=WORKSPACE)


def test_an_image_wins_over_a_build_as_the_cli_has_it() -> None:
    made = planned({"image": "debian", "build": {"dockerfile": "Dockerfile"}})
    assert (made.image, made.build) == ("debian", None)


@pytest.mark.parametrize("config", [{}, {"name": "x"}, {"build": "Dockerfile"}])
def test_neither_image_nor_build_is_a_config_error(config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="names neither image nor build") as info:
        planned(config)
    assert info.value.hint and info.value.exit_code == 125


def test_build_args_must_be_an_object() -> None:
    with pytest.raises(ConfigError, match=r"build\.args must be an object"):
        planned({"build": {"dockerfile": "Dockerfile", "args": ["A=1"]}})


# --- user and environment ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "user", "defaults"),
    [
        ({"remoteUser": "vscode"}, "vscode", ("HOME=/home/vscode", "USER=vscode")),
        ({"containerUser": "node"}, "node", ("HOME=/home/node", "USER=node")),
        ({"remoteUser": "vscode", "containerUser": "root"}, "vscode",
         ("HOME=/home/vscode", "USER=vscode")),
        ({"remoteUser": "root"}, "root", ("HOME=/root", "USER=root")),
        ({"remoteUser": "dev:staff"}, "dev:staff", ("HOME=/home/dev", "USER=dev")),
        ({"remoteUser": "1000"}, "1000", ()),  # an id: its home is the image's to say
        ({"remoteUser": "1000:1000"}, "1000:1000", ()),
        ({"runArgs": ["-u", "builder"]}, "builder", ("HOME=/home/builder", "USER=builder")),
        ({"remoteUser": "a", "runArgs": ["--user", "b"]}, "a", ("HOME=/home/a", "USER=a")),
    ],
)  # fmt: skip
def test_the_user_and_its_home(
    config: dict[str, Any], user: str, defaults: tuple[str, ...]
) -> None:
    made = planned({"image": "debian", **config})
    assert made.user == user
    assert made.env == defaults


def test_a_home_the_file_sets_is_not_replaced() -> None:
    made = planned(
        {"image": "debian", "remoteUser": "vscode", "containerEnv": {"HOME": "/workspace-home"}}
    )
    assert made.env == ("HOME=/workspace-home",)
    by_arg = planned({"image": "debian", "remoteUser": "vscode", "runArgs": ["-e", "HOME=/h"]})
    assert by_arg.env == ("HOME=/h",)


def test_container_env_then_remote_env_then_env_run_arguments() -> None:
    made = planned(
        {
            "image": "debian",
            "runArgs": ["--env", "C=3", "-eD=${localWorkspaceFolder}"],
            "remoteEnv": {"B": "2", "A": "remote", "PATHX": "${containerEnv:BASE}/bin"},
            "containerEnv": {"A": "1", "BASE": "/opt"},
        }
    )
    assert made.env == (
        "A=1",
        "BASE=/opt",
        "B=2",
        "A=remote",  # later wins: remoteEnv over containerEnv
        "PATHX=/opt/bin",  # ${containerEnv:...} sees the file's containerEnv
        "C=3",
        f"D={WORKSPACE}",
    )


def test_remote_env_null_is_not_set() -> None:
    made = planned({"image": "debian", "remoteEnv": {"GONE": None, "KEPT": "1"}})
    assert made.env == ("KEPT=1",)


def test_values_are_substituted_but_never_with_a_host_secret() -> None:
    made = planned(
        {
            "image": "debian",
            "containerEnv": {
                "WS": "${containerWorkspaceFolder}",
                "ME": "${localEnv:USER}",
                "HOMEDIR": "${localEnv:HOME}",
                "T": "${containerEnv:GITHUB_TOKEN}",  # the sandbox's env has no token
                "N": 3,
            },
        }
    )
    assert made.env == (f"WS={WORKSPACE}", "ME=alice", f"HOMEDIR={HOME}", "T=", "N=3")
    assert not any("ghp_" in item for item in made.env)


@pytest.mark.parametrize("key", ["containerEnv", "remoteEnv"])
def test_an_environment_must_be_an_object(key: str) -> None:
    with pytest.raises(ConfigError, match=f"{key} must be an object"):
        planned({"image": "debian", key: ["A=1"]})


def test_hostname_labels_and_volumes() -> None:
    made = planned(
        {
            "image": "debian",
            "runArgs": ["--hostname", "box", "--label", "dev.ws=${localWorkspaceFolderBasename}"],
            "mounts": [
                "source=cache,target=/home/vscode/.cache,type=volume",
                {"type": "tmpfs", "target": "/scratch"},
                f"source={WORKSPACE}/sub,target=/sub,type=bind",  # inside: not a tmpfs
            ],
        }
    )
    assert made.hostname == "box"
    assert made.labels == ("dev.ws=proj",)
    assert made.tmpfs == ("/home/vscode/.cache", "/scratch")
    assert [(f.key, f.action) for f in made.findings] == [
        ("mounts[0]", CHANGED),
        ("mounts[1]", CHANGED),
        ("mounts[2]", CHANGED),
    ]


def test_trusted_gets_no_tmpfs_and_refuses_nothing() -> None:
    made = planned(
        {
            "image": "debian",
            "privileged": True,
            "mounts": ["source=v,target=/v,type=volume"],
            "initializeCommand": "make secrets",
        },
        "trusted",
    )
    assert made.tmpfs == () and made.findings == ()


# --- lifecycle -----------------------------------------------------------------------------


def test_lifecycle_commands_in_the_spec_s_order_whatever_the_file_s() -> None:
    made = planned(
        {
            "image": "debian",
            "postStartCommand": ["echo", "${localWorkspaceFolderBasename}"],
            "postCreateCommand": {"deps": "pip install -e .", "tools": ["make", "tools"]},
            "updateContentCommand": "",
            "onCreateCommand": "echo ${containerWorkspaceFolder}",
            "postAttachCommand": "not run: nothing attaches",
        }
    )
    assert made.lifecycle == (
        ("onCreateCommand", ("/bin/sh", "-c", f"echo {WORKSPACE}")),
        ("postCreateCommand", ("/bin/sh", "-c", "pip install -e .")),
        ("postCreateCommand", ("make", "tools")),
        ("postStartCommand", ("echo", "proj")),
    )


@pytest.mark.parametrize("empty", [None, "", [], {}])
def test_an_empty_lifecycle_command_runs_nothing(empty: Any) -> None:
    assert planned({"image": "debian", "postCreateCommand": empty}).lifecycle == ()


def test_an_array_with_numbers_is_an_argv() -> None:
    made = planned({"image": "debian", "postCreateCommand": ["sleep", 1, 2.5]})
    assert made.lifecycle == (("postCreateCommand", ("sleep", "1", "2.5")),)


@pytest.mark.parametrize("bad", [3, True, [["nested"]], ["ok", {"x": 1}], {"a": 4}])
def test_a_lifecycle_command_of_another_shape_is_a_config_error(bad: Any) -> None:
    with pytest.raises(ConfigError, match="a lifecycle command must be"):
        planned({"image": "debian", "onCreateCommand": bad})


def test_the_cli_s_merged_lifecycle_lists_run_each_source_in_order() -> None:
    answer = {
        "configuration": {
            "image": "debian",
            "postCreateCommand": "echo from-the-file",
            "configFilePath": {"path": str(FILE)},
        },
        "workspace": {"workspaceFolder": "/workspaces/proj"},
        "mergedConfiguration": {
            "image": "debian",
            "onCreateCommands": ["echo image-metadata /workspaces/proj"],
            "postCreateCommands": [
                ["feature-setup", "--x"],
                "",
                {"a": "echo one", "b": ["echo", "two"]},
                "echo from-the-file",
            ],
            "postStartCommands": [],
        },
    }
    config = _normalised(answer, WORKSPACE)
    made = planned(config, raw={"image": "debian", "postCreateCommand": "echo from-the-file"})
    assert made.lifecycle == (
        ("onCreateCommand", ("/bin/sh", "-c", f"echo image-metadata {WORKSPACE}")),
        ("postCreateCommand", ("feature-setup", "--x")),
        ("postCreateCommand", ("/bin/sh", "-c", "echo one")),
        ("postCreateCommand", ("echo", "two")),
        ("postCreateCommand", ("/bin/sh", "-c", "echo from-the-file")),
    )


# --- refusals ------------------------------------------------------------------------------


def test_a_refused_key_is_126_naming_the_file_the_key_and_its_value() -> None:
    with pytest.raises(Refused) as info:
        planned({"image": "debian", "runArgs": ["--init", "--cap-add", "SYS_ADMIN"]})
    error = info.value
    assert error.exit_code == EXIT_REFUSED == 126
    assert error.message == (
        f"{FILE}: runArgs[1] --cap-add SYS_ADMIN refused under profile workspace: "
        "the profile's capabilities are none"
    )
    assert "remove it from devcontainer.json" in error.hint


def test_the_first_refusal_is_named_and_the_others_counted() -> None:
    with pytest.raises(Refused) as info:
        planned(
            {
                "image": "debian",
                "containerEnv": {"T": "${localEnv:GITHUB_TOKEN}"},
                "privileged": True,
                "initializeCommand": "cp ~/.aws/credentials .",
            },
            "offline",
        )
    message = info.value.message
    assert message.startswith(f"{FILE}: containerEnv.T ${{localEnv:GITHUB_TOKEN}} refused")
    assert "under profile offline" in message
    assert message.endswith("(and 2 more: codex-box devcontainer check)")
    assert "\n" not in message


def test_a_host_variable_is_found_in_the_file_as_written_not_in_what_the_cli_made() -> None:
    # The CLI substituted the host's value; the file as written still names it.
    raw = {"image": "debian", "remoteEnv": {"T": "${localEnv:GITHUB_TOKEN}"}}
    substituted = {"image": "debian", "remoteEnv": {"T": "ghp_not_for_the_sandbox"}}
    with pytest.raises(Refused, match=r"remoteEnv\.T \$\{localEnv:GITHUB_TOKEN\} refused"):
        planned(substituted, raw=raw)


def test_a_substituted_user_gets_its_own_home() -> None:
    made = planned({"image": "debian", "remoteUser": "${localEnv:USER}"})
    assert made.user == "alice"
    assert made.env == ("HOME=/home/alice", "USER=alice")


MakeRequest = Callable[..., Request]


def test_a_run_argument_cannot_pass_a_host_secret_into_the_sandbox(
    make_request: MakeRequest, store: ProfileStore, home: Path
) -> None:
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(home), "AWS_SECRET_ACCESS_KEY": "wJalr-SECRET"}
    try:
        made = planned(
            {"image": "debian", "runArgs": ["--env", "AWS_SECRET_ACCESS_KEY"]}, environ=environ
        )
    except Refused:
        return  # refusing it is a fix too
    spec = compile_spec(
        store.get("workspace"),
        make_request(environ=environ, devcontainer=str(FILE), container_env=made.env),
    )
    assert "wJalr-SECRET" not in dict(spec.env).values()
