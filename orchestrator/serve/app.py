"""The ASGI application: FastAPI with the v1 routes, problem+json for every error, and the
OpenAPI 3.1 document (also shipped as ``serve/openapi.json``; a test keeps them equal).

Why FastAPI (on Starlette, on uvicorn): the request bodies are typed models that are
both validated before anything runs and the source of the OpenAPI document, so the
document cannot drift from what the server accepts; Starlette alone would need both
written by hand.
Owns: assembling the app and the document. Does not own: the routes' work.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException

from orchestrator import __version__
from orchestrator.core.errors import EXIT_SETUP, EXIT_USAGE

from . import problems
from .auth import TokenGate
from .limits import BodyLimit
from .models import Problem
from .routes import router
from .service import Service

SHIPPED = Path(__file__).with_name("openapi.json")
TITLE = "codex-box"
DESCRIPTION = (
    "Runs and sessions in sandboxes chosen by a named security profile. Errors are RFC 9457 "
    "problem documents whose `exit_code` is what `codex-box` would exit with."
)


def create(service: Service | None, *, token: str | None = None) -> Any:
    """The app (wrapped in the token gate). ``service`` None: only the document."""
    app = FastAPI(
        title=TITLE,
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.service = service
    app.include_router(router)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> Any:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        detail = f"{where}: {first.get('msg', 'invalid')}" if where else "invalid request"
        return problems.problem(
            422, detail, kind="invalid-request", exit_code=EXIT_USAGE, hint="see /openapi.json"
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Any:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path (Starlette names one route's)
            headers["Allow"] = ", ".join(_methods(app, request.url.path))
        return problems.problem(
            exc.status_code, str(exc.detail), kind="http", exit_code=EXIT_USAGE, headers=headers
        )

    @app.exception_handler(Exception)
    async def internal(_request: Request, exc: Exception) -> Any:
        from loguru import logger

        logger.opt(exception=exc).error("internal error")
        return problems.problem(
            500, f"internal error: {type(exc).__name__}", kind="internal", exit_code=EXIT_SETUP
        )

    app.openapi = lambda: document(app)  # type: ignore[method-assign]
    # The token first (a stranger's body is never read), then the body's size.
    return TokenGate(BodyLimit(app), token) if service is not None else app


def _methods(app: FastAPI, path: str) -> list[str]:
    """The methods the document gives ``path`` (the document, not ``app.routes``:
    FastAPI keeps an included router's routes to itself)."""
    found: set[str] = set()
    for template, operations in document(app).get("paths", {}).items():
        pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            found |= {method.upper() for method in operations}
    return sorted(found)


def document(app: Any) -> dict[str, Any]:
    """The OpenAPI 3.1 document: FastAPI's, with every error declared as problem+json."""
    if app.openapi_schema:
        return dict(app.openapi_schema)
    schema = get_openapi(
        title=TITLE,
        version=__version__,
        description=DESCRIPTION,
        routes=app.routes,
        openapi_version="3.1.0",
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    problem = {
        "description": "An RFC 9457 problem document",
        "content": {problems.MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses["default"] = problem
    app.openapi_schema = schema
    return schema


def shipped_matches() -> tuple[bool, str]:
    """Whether ``serve/openapi.json`` is the document this code generates."""
    generated = json.dumps(document(create(None)), indent=2, sort_keys=True) + "\n"
    try:
        shipped = SHIPPED.read_text(encoding="utf-8")
    except FileNotFoundError:
        shipped = ""
    return shipped == generated, generated


if __name__ == "__main__":  # python -m orchestrator.serve.app: rewrite the shipped document
    _, text = shipped_matches()
    SHIPPED.write_text(text, encoding="utf-8")
    print(f"wrote {SHIPPED}")
