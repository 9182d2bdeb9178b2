"""The request bodies: validated before anything runs, extra fields refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.serve.models import CheckBody, ExecBody, RunBody, SessionBody

FULL_RUN: dict[str, Any] = {
    "argv": ["pytest", "-q", "tests/"],
    "env": ["CI=1", "EMPTY=", "MULTI=a\nb"],
    "timeout": "5m",
    "approve": True,
    "stdin": "input",
    "profile": "workspace",
    "backend": "docker",
    "image": "python:3.12",
    "workspace": "/src/app",
    "memory": "512m",
    "pids": "256",
    "cpus": "1.5",
    "policy_mode": "audit-only",
    "trust": True,
}


def test_a_full_valid_run_body_is_accepted_as_given() -> None:
    body = RunBody.model_validate(FULL_RUN)
    assert body.model_dump() == FULL_RUN


def test_a_minimal_run_body_has_the_defaults() -> None:
    body = RunBody.model_validate({"argv": ["true"]})
    assert body.env == [] and body.approve is False and body.trust is False
    assert body.profile is None and body.backend is None and body.stdin is None


@pytest.mark.parametrize(
    "change",
    [
        {"argv": []},
        {"argv": [""]},
        {"argv": "true"},
        {"argv": ["echo", "a\0b"]},
        {"argv": ["tr\0ue"]},
        {"env": ["HOME"]},
        {"env": ["A=b\0c"]},
        {"env": ["1A=b"]},
        {"env": ["=b"]},
        {"env": ["A B=c"]},
        {"backend": "kubernetes"},
        {"backend": "Native"},
        {"policy_mode": "lax"},
        {"profile": ""},
        {"timeout": ""},
        {"timeout": "1" * 33},
        {"extra": 1},
        {"session_id": "abc"},
    ],
)
def test_a_bad_run_body_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RunBody.model_validate({"argv": ["true"], **change})


def test_a_run_body_without_argv_is_refused() -> None:
    with pytest.raises(ValidationError):
        RunBody.model_validate({"profile": "workspace"})


def test_an_exec_body_has_a_cwd_but_no_profile() -> None:
    assert ExecBody.model_validate({"argv": ["ls"], "cwd": "/w"}).cwd == "/w"
    with pytest.raises(ValidationError):
        ExecBody.model_validate({"argv": ["ls"], "profile": "workspace"})
    with pytest.raises(ValidationError):
        ExecBody.model_validate({"argv": ["ls"], "env": ["PATH"]})


@pytest.mark.parametrize("name", ["a", "web-1", "A.b_c-d", "0" + "x" * 62])
def test_a_session_name_of_the_pattern_is_accepted(name: str) -> None:
    assert SessionBody.model_validate({"name": name}).name == name


@pytest.mark.parametrize(
    "name", ["", "-lead", ".hidden", "_x", "a b", "a/b", "a\nb", "0" + "x" * 63, "é"]
)
def test_a_session_name_off_the_pattern_is_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        SessionBody.model_validate({"name": name})


def test_a_session_body_has_its_defaults_and_refuses_extra_fields() -> None:
    body = SessionBody.model_validate({})
    assert (body.idle_timeout, body.max_lifetime, body.name) == ("30m", "8h", None)
    with pytest.raises(ValidationError):
        SessionBody.model_validate({"argv": ["true"]})


def test_a_check_body_needs_argv_and_refuses_extra_fields() -> None:
    assert CheckBody.model_validate({"argv": ["git", "push"]}).argv == ["git", "push"]
    for bad in ({"argv": []}, {}, {"argv": ["x"], "approve": True}):
        with pytest.raises(ValidationError):
            CheckBody.model_validate(bad)
