"""A devcontainer.json of any shape (``devcontainer.plan``, what ``run --devcontainer``
makes of the file after reading it): the keys codex-box reads, holding values of every
type — and the same keys with plausible values — give a ``Plan`` or a one-line
``ConfigError`` (125) / ``Refused`` (126), never a crash. And whatever passes keeps the
profile's promises: no host variable in the environment, no refused key's effect, a tmpfs
only at an absolute target."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.errors import EXIT_REFUSED, EXIT_SETUP, ConfigError, Refused
from orchestrator.devcontainer.plan import Plan, plan
from orchestrator.devcontainer.reading import Loaded
from orchestrator.profiles.store import ProfileStore

from .conftest import fuzz, json_values, odd_text, outcome

KEYS = ["image", "build", "containerEnv", "remoteEnv", "remoteUser", "containerUser",
        "runArgs", "mounts", "capAdd", "privileged", "securityOpt", "forwardPorts", "appPort",
        "workspaceFolder", "workspaceMount", "features", "initializeCommand", "onCreateCommand",
        "updateContentCommand", "postCreateCommand", "postStartCommand", "dockerFile",
        "context", "dockerComposeFile"]  # fmt: skip
RUN_ARGS = ["--env", "-e", "A=1", "--label", "x=y", "--hostname", "h", "--user", "u",
            "--init", "--privileged", "--cap-add", "ALL", "--network", "host", "none",
            "--device", "/dev/kvm", "-v", "/:/h", "--mount", "--name", "n", "--", "-",
            "--pid=host", "-eX=1", "--security-opt", "seccomp=unconfined"]  # fmt: skip
plausible = st.fixed_dictionaries(
    {"image": st.sampled_from(["codex-box/base", "debian:12"])},
    optional={
        "containerEnv": st.dictionaries(odd_text, odd_text | st.sampled_from(
            ["${localEnv:HOME}", "${localEnv:TOKEN}", "${containerEnv:PATH}:/x"]), max_size=3),
        "runArgs": st.lists(st.sampled_from(RUN_ARGS) | odd_text, max_size=6),
        "mounts": st.lists(st.sampled_from([
            "source=v,target=/data,type=volume", "type=bind,source=/etc,target=/e",
            "source=${localWorkspaceFolder}/c,target=/c,type=bind", "target=relative",
            "type=tmpfs,target=/proc/x"]) | odd_text, max_size=3),
        "remoteUser": st.sampled_from(["vscode", "root", "0:0", "--privileged"]) | odd_text,
        "postCreateCommand": odd_text | st.lists(odd_text, max_size=3)
        | st.dictionaries(odd_text, odd_text, max_size=2),
        "build": st.fixed_dictionaries({"dockerfile": odd_text},
                                        optional={"args": json_values, "context": odd_text}),
    },
)  # fmt: skip
shapeless = st.dictionaries(st.sampled_from(KEYS) | odd_text, json_values, max_size=6)


def check(config: dict[str, Any], profile_name: str) -> None:
    store = ProfileStore(codex_home=Path("/nonexistent-codex-home"))
    with tempfile.TemporaryDirectory() as workspace:
        loaded = Loaded(Path(workspace, ".devcontainer", "devcontainer.json"), workspace,
                        config, config, "json5")  # fmt: skip
        made, error = outcome(
            lambda: plan(loaded, store.get(profile_name), home="/home/u",
                         codex_home="/home/u/.codex", environ={"PATH": "/bin"}),
            config,
        )  # fmt: skip
    if error is not None:
        assert isinstance(error, ConfigError | Refused), repr(error)
        line = error.one_line()
        assert line.strip() and "\n" not in line and "\r" not in line, line
        assert error.exit_code == (EXIT_REFUSED if isinstance(error, Refused) else EXIT_SETUP)
        return
    assert isinstance(made, Plan)
    if profile_name != "trusted":
        assert not any("${localEnv:TOKEN" in item for item in made.env)
        assert config.get("privileged") is not True
        assert all(t.startswith("/") for t in made.tmpfs)
        assert not config.get("initializeCommand")
    for _key, argv in made.lifecycle:
        assert isinstance(argv, tuple) and all(isinstance(a, str) for a in argv)


@fuzz("devcontainer.json", examples=200)
@given(shapeless, st.sampled_from(["offline", "workspace", "trusted"]))
def test_shapeless_devcontainer_configs(config: dict[str, Any], profile: str) -> None:
    check(config, profile)


@fuzz("devcontainer.json", examples=200)
@given(plausible, st.sampled_from(["offline", "workspace-net"]))
def test_plausible_devcontainer_configs(config: dict[str, Any], profile: str) -> None:
    check(config, profile)
