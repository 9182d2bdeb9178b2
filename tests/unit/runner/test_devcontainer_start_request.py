"""A session's ``StartRequest`` carries a devcontainer's launch options through its JSON
form (the keeper's pipe): every tuple comes back a tuple, equal to what was sent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.core.errors import CodexBoxError
from orchestrator.core.options import LaunchOptions
from orchestrator.runner.sessions.request import StartRequest

OPTIONS = LaunchOptions(
    image="codex-box-devcontainer/0123456789abcdef:latest",
    env_names=("A=1",),
    devcontainer="/home/alice/proj/.devcontainer/devcontainer.json",
    container_env=("HOME=/home/vscode", "USER=vscode", "X=a=b"),
    user="vscode",
    hostname="devbox",
    labels=("dev.team=core",),
    tmpfs=("/home/vscode/.cache", "/data"),
)


def through_json(request: StartRequest) -> StartRequest:
    return StartRequest.from_json(json.loads(json.dumps(request.to_json())))


def test_a_devcontainer_s_options_make_the_round_trip() -> None:
    request = StartRequest(environ={"PATH": "/bin"}, cwd="/home/alice/proj", backend="docker",
                           options=OPTIONS, name="dev")  # fmt: skip
    back = through_json(request)
    assert back == request
    assert isinstance(back.options.container_env, tuple)
    assert isinstance(back.options.labels, tuple) and isinstance(back.options.tmpfs, tuple)


def test_without_a_devcontainer_the_defaults_come_back() -> None:
    request = StartRequest(environ={}, cwd="/")
    back = through_json(request)
    assert back == request
    assert back.options.devcontainer is None and back.options.container_env == ()


@pytest.mark.parametrize("key", ["container_env", "labels", "tmpfs"])
@pytest.mark.parametrize("bad", ["A=1", {"A": "1"}, 3])
def test_a_field_that_is_not_a_list_is_a_malformed_request(key: str, bad: Any) -> None:
    data = StartRequest(environ={}, cwd="/", options=OPTIONS).to_json()
    data["options"][key] = bad
    with pytest.raises(CodexBoxError, match="malformed"):
        StartRequest.from_json(json.loads(json.dumps(data)))


def test_null_lists_come_back_empty() -> None:
    data = StartRequest(environ={}, cwd="/", options=OPTIONS).to_json()
    data["options"] |= {"container_env": None, "labels": None, "tmpfs": None}
    back = StartRequest.from_json(json.loads(json.dumps(data)))
    assert (back.options.container_env, back.options.labels, back.options.tmpfs) == ((), (), ())
