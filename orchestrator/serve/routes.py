"""API v1: each operation reads its body, asks the service or the runner, answers.

Thin, like the CLI's verbs: no decision is made here. Every error is a problem document
(``problems``); a run beyond the queue is a 429 with Retry-After.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from starlette.responses import StreamingResponse

from orchestrator import __version__
from orchestrator.audit.log import LOG_NAME
from orchestrator.core.errors import CodexBoxError

from . import problems, questions
from .execution import abandon, collected, settle, streamed
from .gate import QueueFull
from .metrics import CONTENT_TYPE
from .models import (
    AuditPage,
    CheckBody,
    ExecBody,
    Health,
    Result,
    RunBody,
    SessionBody,
    SessionInfo,
)
from .service import Execution, Service

router = APIRouter()
NDJSON = "application/x-ndjson"
RETRY_AFTER_S = "1"
MAX_AUDIT = 10_000

_STREAMED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The result; with `stream=1`, NDJSON events: `stdout`/`stderr` "
        "(`data`, or `data_b64` for bytes that are not UTF-8), then `exit` (the result's "
        "fields) or `error` (a problem's fields).",
        "content": {NDJSON: {"schema": {"type": "string"}}},
    }
}
Stream = Annotated[bool, Query(description="Stream NDJSON events while it runs.")]


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


class RunStream(StreamingResponse):
    """A stream that settles its execution even when it never began (the client left
    between the decision and the first byte)."""

    def __init__(self, service: Service, execution: Execution) -> None:
        super().__init__(streamed(service, execution), media_type=NDJSON)
        self.service, self.execution = service, execution

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            abandon(self.service, self.execution)  # nothing when it was settled


async def _launch(request: Request, begin: Any, stream: bool) -> Response | dict[str, Any]:
    service = _service(request)
    if service.stopping:
        return problems.problem(503, "the server is stopping", kind="stopping")
    try:
        await service.gate.acquire()
    except QueueFull:
        return problems.problem(
            429,
            f"{service.gate.running} runs are running and {service.gate.waiting} waiting",
            kind="queue-full",
            hint="retry after the time in Retry-After",
            headers={"Retry-After": RETRY_AFTER_S},
        )
    try:
        execution: Execution = await anyio.to_thread.run_sync(begin, limiter=service.threads())
    except CodexBoxError as exc:
        service.gate.release()
        return problems.from_error(exc)
    except BaseException:
        service.gate.release()
        raise
    try:
        await anyio.to_thread.run_sync(execution.started, limiter=service.threads())
    except CodexBoxError as exc:  # refused or failed before anything ran
        settle(service, execution, None)
        return problems.from_error(exc)
    if stream:
        return RunStream(service, execution)
    try:
        return await collected(service, execution, request.receive)
    except CodexBoxError as exc:
        return problems.from_error(exc)


@router.post("/v1/runs", response_model=Result, responses=_STREAMED, tags=["runs"])
async def create_run(body: RunBody, request: Request, stream: Stream = False) -> Any:
    """Run one command, as `codex-box run --json` would; from a warm pool when the
    request names a pooled profile/backend and no workspace."""
    service = _service(request)
    return await _launch(request, lambda: service.begin_run(body), stream)


@router.post(
    "/v1/sessions/{session_id}/exec", response_model=Result, responses=_STREAMED, tags=["sessions"]
)
async def exec_in_session(
    session_id: str, body: ExecBody, request: Request, stream: Stream = False
) -> Any:
    """Run one command in a live session, as `codex-box exec` would."""
    service = _service(request)
    return await _launch(request, lambda: service.begin_exec(session_id, body), stream)


async def _call(request: Request, fn: Any, *args: Any) -> Any:
    try:
        return await anyio.to_thread.run_sync(fn, *args, limiter=_service(request).threads())
    except CodexBoxError as exc:
        return problems.from_error(exc)


@router.post("/v1/sessions", response_model=SessionInfo, status_code=201, tags=["sessions"])
async def create_session(body: SessionBody, request: Request) -> Any:
    """Start a session (from a warm pool when one fits); shared with the CLI."""
    return await _call(request, _service(request).start_session, body)


@router.get("/v1/sessions", response_model=list[SessionInfo], tags=["sessions"])
async def list_sessions(request: Request) -> Any:
    return await _call(request, _service(request).list_sessions)


@router.get("/v1/sessions/{session_id}", response_model=SessionInfo, tags=["sessions"])
async def get_session(session_id: str, request: Request) -> Any:
    return await _call(request, _service(request).session_info, session_id)


@router.delete("/v1/sessions/{session_id}", status_code=204, tags=["sessions"])
async def delete_session(session_id: str, request: Request) -> Response:
    answer = await _call(request, _service(request).stop_session, session_id)
    return answer if isinstance(answer, Response) else Response(status_code=204)


@router.post("/v1/check", tags=["policy"])
async def check(body: CheckBody, request: Request) -> Any:
    """The execution policy's decision for a command, as `codex-box check --json`."""
    service = _service(request)
    return await _call(request, questions.check, service.context, service.workspaces, body)


@router.get("/v1/profiles", tags=["profiles"])
async def profiles(request: Request) -> Any:
    """Every profile and what it allows, as `codex-box profiles --json`."""
    return await _call(request, questions.profiles, _service(request).context)


@router.get("/v1/audit", response_model=AuditPage, tags=["audit"])
async def audit(
    request: Request,
    decision: Literal["allowed", "denied", "requires_approval"] | None = None,
    operation: Annotated[str | None, Query(max_length=64)] = None,
    profile: Annotated[str | None, Query(max_length=200)] = None,
    session: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[
        str | None, Query(max_length=64, examples=["30m", "2026-12-07T10:00:00Z"])
    ] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT)] = 1000,
) -> Any:
    """Audit records, filtered as `codex-box audit list` filters (the newest `limit`)."""
    service = _service(request)
    filters = (decision, operation, profile, session, since, until)
    return await _call(request, questions.audit, service.home / LOG_NAME, filters, limit)


@router.get("/healthz", response_model=Health, tags=["server"])
async def health(request: Request) -> Any:
    service = _service(request)
    return {
        "status": "stopping" if service.stopping else "ok",
        "version": __version__,
        "running": service.gate.running,
        "queued": service.gate.waiting,
        "pools": {
            pool.name: {
                "size": pool.size,
                "ready": pool.ready,
                "busy": pool.busy,
                "last_error": pool.last_error,
            }
            for pool in service.pools.values()
        },
    }


@router.get(
    "/metrics",
    tags=["server"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus text."""
    return Response(_service(request).metrics.render(), media_type=CONTENT_TYPE)
