"""Errors as RFC 9457 problem documents: the status of each codex-box error, the fields,
and one line whatever the detail holds."""

from __future__ import annotations

import json

import pytest

from orchestrator.core.errors import (
    EXIT_REFUSED,
    EXIT_SETUP,
    EXIT_USAGE,
    AuditError,
    BackendUnavailable,
    Cancelled,
    CodexBoxError,
    ConfigError,
    Refused,
    SandboxSetupError,
    UsageError,
)
from orchestrator.runner.sessions.locate import UnknownSession
from orchestrator.serve import problems


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (UsageError("bad flag"), 400, "usage"),
        (Refused("denied"), 403, "refused"),
        (ConfigError("bad profile"), 422, "cannot-run"),
        (SandboxSetupError("cannot mount"), 422, "cannot-run"),
        (Cancelled("gone"), 422, "cannot-run"),
        (CodexBoxError("plain"), 422, "cannot-run"),
        (BackendUnavailable("no docker"), 503, "backend-unavailable"),
        (AuditError("disk full"), 503, "audit-unwritable"),
        (UnknownSession("no session abc"), 404, "unknown-session"),
    ],
)
def test_each_error_has_its_status(error: CodexBoxError, status: int, kind: str) -> None:
    assert problems.status_of(error) == (status, kind)


def body_of(response: problems.ProblemResponse) -> dict[str, object]:
    return json.loads(response.body)


def test_a_problem_has_the_rfc_9457_fields_and_the_exit_code() -> None:
    response = problems.problem(404, "no such session", kind="unknown-session", exit_code=125)
    assert response.status_code == 404
    assert response.media_type == "application/problem+json"
    assert response.headers["content-type"] == "application/problem+json"
    body = body_of(response)
    assert body == {
        "type": "urn:codex-box:problem:unknown-session",
        "title": "not found",
        "status": 404,
        "detail": "no such session",
        "exit_code": 125,
    }
    assert "hint" not in body


def test_a_problem_keeps_a_hint_and_extra_headers() -> None:
    response = problems.problem(
        429,
        "busy",
        kind="queue-full",
        exit_code=EXIT_USAGE,
        hint="later",
        headers={"Retry-After": "1"},
    )
    body = body_of(response)
    assert body["hint"] == "later" and body["title"] == "too many runs"
    assert body["exit_code"] == EXIT_USAGE
    assert response.headers["retry-after"] == "1"


def test_an_unknown_status_has_a_generic_title_and_the_setup_exit_code() -> None:
    body = body_of(problems.problem(418, "teapot", kind="x"))
    assert body["title"] == "error" and body["exit_code"] == EXIT_SETUP


def test_a_newline_or_control_character_in_the_detail_is_escaped() -> None:
    response = problems.problem(
        400, "bad\nforged line\r\x1b[31m\u2028", kind="usage", hint="fix\nit"
    )
    raw = response.body.decode()
    body = json.loads(raw)
    assert body["detail"] == "bad\\nforged line\\r\\x1b[31m\\u2028"
    assert body["hint"] == "fix\\nit"
    assert body["detail"].isprintable() and body["hint"].isprintable()


def test_from_error_carries_message_hint_and_exit_code() -> None:
    body = body_of(problems.from_error(Refused("not\nallowed", hint="use --approve")))
    assert body == {
        "type": "urn:codex-box:problem:refused",
        "title": "refused",
        "status": 403,
        "detail": "not\\nallowed",
        "exit_code": EXIT_REFUSED,
        "hint": "use --approve",
    }


def test_as_event_is_the_same_problem_as_a_stream_event() -> None:
    event = problems.as_event(UnknownSession("no session x\ny"))
    assert event == {
        "event": "error",
        "type": "urn:codex-box:problem:unknown-session",
        "status": 404,
        "detail": "no session x\\ny",
        "hint": "",
        "exit_code": EXIT_SETUP,
    }
