"""The fork server child's request: JSON fields mapped onto RunRequest and LaunchOptions."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core.errors import UsageError
from orchestrator.core.options import LaunchOptions
from orchestrator.runner.forked_run import decode
from orchestrator.runner.pipeline import RunRequest


def test_every_field_lands_where_the_cli_would_put_it() -> None:
    request = decode(
        {
            "argv": ["pytest", "-q"],
            "profile": "workspace",
            "workspace": "/src/app",
            "backend": "docker",
            "env": ["CI=1", "X=y z"],
            "timeout": "5m",
            "memory": "512m",
            "pids": "256",
            "cpus": "1.5",
            "image": "python:3.12",
            "trust": True,
            "approve": True,
            "policy_mode": "audit-only",
            "stdin": "ignored here: it comes as a descriptor",
        }
    )
    assert request == RunRequest(
        argv=("pytest", "-q"),
        profile="workspace",
        workspace="/src/app",
        backend="docker",
        options=LaunchOptions(
            env_names=("CI=1", "X=y z"),
            timeout="5m",
            memory="512m",
            pids="256",
            cpus="1.5",
            image="python:3.12",
        ),
        trust_opt_in=True,
        approve=True,
        policy_mode="audit-only",
    )


def test_absent_or_null_fields_are_the_defaults() -> None:
    request = decode({"argv": ["true"], "profile": None, "env": None, "timeout": None})
    assert request == RunRequest(argv=("true",))
    assert request.options == LaunchOptions()
    assert request.trust_opt_in is False and request.approve is False


def test_a_number_given_for_a_text_field_becomes_its_text() -> None:
    request = decode({"argv": ["sleep", "1"], "timeout": 30, "cpus": 1.5, "pids": 0})
    assert request.options.timeout == "30"
    assert request.options.cpus == "1.5"
    assert request.options.pids == "0"


@pytest.mark.parametrize(
    "request_",
    [
        {},
        {"argv": None},
        {"argv": []},
        {"argv": "true"},
        {"argv": ("true",)},
        {"argv": ["true", 1]},
        {"argv": [None]},
    ],
)
def test_argv_must_be_a_non_empty_list_of_strings(request_: dict[str, Any]) -> None:
    with pytest.raises(UsageError) as info:
        decode(request_)
    assert info.value.exit_code == 2
    assert "argv" in info.value.message
