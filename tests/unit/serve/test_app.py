"""The ASGI app and its OpenAPI document: the shipped file is the generated one, every
error is declared and answered as problem+json, and the v1 operations are all there."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.serve import app
from orchestrator.serve.gate import Gate
from orchestrator.serve.metrics import Metrics
from tests.unit.serve.asgi import UNIX, call, scope

OPERATIONS = {
    "/v1/runs": {"post"},
    "/v1/sessions": {"get", "post"},
    "/v1/sessions/{session_id}": {"get", "delete"},
    "/v1/sessions/{session_id}/exec": {"post"},
    "/v1/check": {"post"},
    "/v1/profiles": {"get"},
    "/v1/audit": {"get"},
    "/healthz": {"get"},
    "/metrics": {"get"},
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return app.document(app.create(None))


def test_the_shipped_openapi_json_is_the_generated_document() -> None:
    matches, generated = app.shipped_matches()
    assert matches, "run `python -m orchestrator.serve.app` to rewrite serve/openapi.json"
    assert json.loads(app.SHIPPED.read_text(encoding="utf-8")) == json.loads(generated)


def test_the_document_is_openapi_3_1_0(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "codex-box"


def test_every_v1_operation_is_there_with_its_methods(document: dict[str, Any]) -> None:
    methods = {path: set(item) for path, item in document["paths"].items()}
    assert methods == OPERATIONS


def test_every_operation_declares_its_errors_as_problem_json(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            default = operation["responses"].get("default")
            assert default is not None, f"{method} {path} has no default response"
            assert list(default["content"]) == ["application/problem+json"], (method, path)
            schema = default["content"]["application/problem+json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path)
            assert "422" not in operation["responses"], (method, path)


def test_the_problem_schema_is_defined_and_fastapis_validation_error_is_gone(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "detail", "exit_code"}
    text = json.dumps(document)
    assert "HTTPValidationError" not in text
    assert "#/components/schemas/ValidationError" not in text
    assert "ValidationError" not in schemas


def test_the_shipped_document_declares_problem_json_too() -> None:
    shipped = json.loads(app.SHIPPED.read_text(encoding="utf-8"))
    assert shipped["openapi"] == "3.1.0"
    assert {path: set(item) for path, item in shipped["paths"].items()} == OPERATIONS
    assert "HTTPValidationError" not in json.dumps(shipped)


# --- the app answering, in-process (a fake service: nothing runs) -------------------------


def fake_service(*, limit: int = 2, queue: int = 0, stopping: bool = False) -> Any:
    metrics = Metrics()
    return SimpleNamespace(
        stopping=stopping, gate=Gate(limit, queue, metrics), metrics=metrics, pools={}
    )


def test_an_invalid_body_is_a_422_problem_with_the_usage_exit_code() -> None:
    answer = call(app.create(None), scope("POST", "/v1/runs"), {"argv": []})
    assert answer.status == 422
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["type"] == "urn:codex-box:problem:invalid-request"
    assert body["exit_code"] == 2
    assert body["detail"].startswith("body.argv:")


def test_an_unknown_path_is_a_404_problem() -> None:
    answer = call(app.create(None), scope("GET", "/v1/nothing"))
    assert answer.status == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == "urn:codex-box:problem:http"


def test_healthz_reports_the_gate_on_the_unix_socket_without_a_token() -> None:
    service = fake_service()
    answer = call(app.create(service, token="t" * 32), scope(server=UNIX))
    assert answer.status == 200
    body = answer.json()
    assert body["status"] == "ok" and body["running"] == 0 and body["queued"] == 0
    assert body["pools"] == {}


def test_the_created_app_needs_the_token_on_tcp() -> None:
    answer = call(app.create(fake_service(), token="t" * 32), scope())
    assert answer.status == 401
    good = scope(headers=[(b"authorization", b"Bearer " + b"t" * 32)])
    assert call(app.create(fake_service(), token="t" * 32), good).status == 200


def test_metrics_is_prometheus_text() -> None:
    answer = call(app.create(fake_service(), token=None), scope("GET", "/metrics", server=UNIX))
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert b"codex_box_running 0.0" in answer.body


def test_a_run_beyond_the_queue_is_a_429_with_retry_after() -> None:
    service = fake_service(limit=1, queue=0)
    service.gate.running = 1  # the one slot is taken
    answer = call(
        app.create(service, token=None), scope("POST", "/v1/runs", server=UNIX), {"argv": ["true"]}
    )
    assert answer.status == 429
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["type"] == "urn:codex-box:problem:queue-full"
    assert service.gate.running == 1


def test_a_run_while_stopping_is_a_503() -> None:
    service = fake_service(stopping=True)
    answer = call(
        app.create(service, token=None), scope("POST", "/v1/runs", server=UNIX), {"argv": ["true"]}
    )
    assert answer.status == 503
    assert answer.json()["type"] == "urn:codex-box:problem:stopping"
    assert service.gate.running == 0


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/runs", "POST"),
        ("PUT", "/v1/sessions/0123456789ab", "DELETE, GET"),
        ("PATCH", "/v1/sessions", "GET, POST"),
    ],
)
def test_a_wrong_method_is_a_405_problem_naming_every_allowed_method(
    method: str, path: str, allow: str
) -> None:
    answer = call(app.create(None), scope(method, path))
    assert answer.status == 405
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["allow"] == allow
    assert answer.json()["title"] == "method not allowed"


def test_a_wrong_method_is_a_405_problem() -> None:
    answer = call(app.create(None), scope("DELETE", "/v1/runs"))
    assert answer.status == 405
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["title"] == "method not allowed" and body["exit_code"] == 2
