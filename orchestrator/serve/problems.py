"""Errors as RFC 9457 ``application/problem+json``, with the CLI's exit code in a field.

Owns: the HTTP status of each codex-box error (by what it means to a client: its input
was wrong, it was refused, the thing is not there, the host cannot do it now) and the
problem document. Does not own: the errors (``core.errors``).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from orchestrator.core.errors import (
    EXIT_REFUSED,
    EXIT_SETUP,
    EXIT_USAGE,
    AuditError,
    BackendUnavailable,
    CodexBoxError,
    printable,
)

MEDIA_TYPE = "application/problem+json"
BASE = "urn:codex-box:problem:"

_TITLES = {
    400: "bad request",
    401: "unauthorized",
    403: "refused",
    404: "not found",
    405: "method not allowed",
    413: "too large",
    422: "cannot run this",
    429: "too many runs",
    500: "internal error",
    503: "unavailable",
}


class ProblemResponse(JSONResponse):
    media_type = MEDIA_TYPE


def problem(
    status: int,
    detail: str,
    *,
    kind: str,
    exit_code: int = EXIT_SETUP,
    hint: str = "",
    headers: dict[str, str] | None = None,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": BASE + kind,
        "title": _TITLES.get(status, "error"),
        "status": status,
        "detail": printable(detail),
        "exit_code": exit_code,
    }
    if hint:
        body["hint"] = printable(hint)
    return ProblemResponse(body, status_code=status, headers=headers)


def status_of(exc: CodexBoxError) -> tuple[int, str]:
    """The HTTP status and problem kind of a codex-box error."""
    if type(exc).__name__ == "UnknownSession":  # runner.sessions.locate: no import here
        return 404, "unknown-session"
    if isinstance(exc, BackendUnavailable):
        return 503, "backend-unavailable"
    if isinstance(exc, AuditError):
        return 503, "audit-unwritable"
    if exc.exit_code == EXIT_USAGE:
        return 400, "usage"
    if exc.exit_code == EXIT_REFUSED:
        return 403, "refused"
    return 422, "cannot-run"


def from_error(exc: CodexBoxError) -> ProblemResponse:
    status, kind = status_of(exc)
    return problem(status, exc.message, kind=kind, exit_code=exc.exit_code, hint=exc.hint)


def as_event(exc: CodexBoxError) -> dict[str, Any]:
    """The same problem, as the last event of a stream (its status is already sent)."""
    status, kind = status_of(exc)
    return {
        "event": "error",
        "type": BASE + kind,
        "status": status,
        "detail": printable(exc.message),
        "hint": printable(exc.hint),
        "exit_code": exc.exit_code,
    }
