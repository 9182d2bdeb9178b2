"""Schemathesis against a running ``codex-box serve`` (loopback TCP with a token): every
operation of the shipped OpenAPI document, with bounded generated examples — no 5xx,
every response as documented, every error a problem document.

The generated requests really run: they are kept to what cannot reach beyond a test
(profile ``offline`` on the native sandbox, a scratch workspace, the policy enforcing,
a short timeout); everything else — argv, env, stdin, limits, names, filters, ids — is
the generator's."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from orchestrator.serve.app import SHIPPED
from tests.conftest import CODEX_BOX
from tests.serve_helpers import Served, config_text, leftovers

SCHEMA = schemathesis.openapi.from_dict(json.loads(SHIPPED.read_text()))
EXAMPLES = int(os.environ.get("CODEX_BOX_SCHEMATHESIS_EXAMPLES", "15"))
TOKEN = "t0ken-" + "x" * 26


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("schemathesis")
    home, codex_home, workspace = root / "home", root / "home" / ".codex", root / "proj"
    for path in (home, codex_home, workspace):
        path.mkdir(parents=True, exist_ok=True)
    text = config_text(workspaces=root / "ws", pools={"offline/native": 1})
    (codex_home / "config.toml").write_text(text.replace("audit-only", "enforce"))
    token = codex_home / "serve" / "token"
    token.parent.mkdir(mode=0o700)
    token.write_text(TOKEN)
    token.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
    env.update(HOME=str(home), CODEX_HOME=str(codex_home), PYTHONDONTWRITEBYTECODE="1")
    log = root / "serve.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [CODEX_BOX, "serve", "--listen", "127.0.0.1:0", "--token-file", str(token)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Served(process, codex_home, root / "ws", env, log)
    try:
        port = _port(log, process)
        base = f"http://127.0.0.1:{port}"
        _ready(base)
        yield base, workspace
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, served.output()
        assert leftovers(served) == []


def _port(log: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"http://127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        assert process.poll() is None, log.read_text()
        time.sleep(0.1)
    raise AssertionError(log.read_text())


def _ready(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            health = requests.get(f"{base}/healthz", headers=_auth(), timeout=5).json()
            if all(p["ready"] >= p["size"] for p in health["pools"].values()):
                return
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not get ready")


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def _kept_safe(body: object, workspace: Path, path: str) -> None:
    """What a generated request may not choose: where and how wide it runs."""
    if not isinstance(body, dict):
        return
    if path in ("/v1/runs", "/v1/sessions"):
        body.update(profile="offline", backend="native", workspace=str(workspace))
        for key in ("trust", "policy_mode", "image"):
            body.pop(key, None)
    if path == "/v1/sessions":
        body.update(idle_timeout="60", max_lifetime="120")
    if "timeout" in body or path in ("/v1/runs", "/v1/sessions/{session_id}/exec"):
        body["timeout"] = "5"


def test_the_running_server_serves_the_shipped_document(api: tuple[str, Path]) -> None:
    base, _ = api
    served = requests.get(f"{base}/openapi.json", headers=_auth(), timeout=30).json()
    assert served == json.loads(SHIPPED.read_text())


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_keeps_to_its_document(
    case: schemathesis.Case, api: tuple[str, Path]
) -> None:
    base, workspace = api
    generated = json.dumps(case.body, sort_keys=True, default=str)
    _kept_safe(case.body, workspace, case.operation.path)
    # Made safe, an invalid example may have become a valid one: then its acceptance
    # proves nothing (every other check still holds).
    changed = json.dumps(case.body, sort_keys=True, default=str) != generated
    response = case.call(base_url=base, headers=_auth(), timeout=60)
    assert response.status_code < 500, (case.operation.path, case.body, response.text)
    if response.status_code >= 400:
        content_type = response.headers.get("content-type") or [""]
        assert content_type[0] == "application/problem+json", response.text
        problem = response.json()
        assert {"type", "title", "status", "detail", "exit_code"} <= set(problem), problem
        assert problem["status"] == response.status_code
    excluded = [schemathesis.checks.positive_data_acceptance]
    if changed:
        excluded.append(schemathesis.checks.negative_data_rejection)
    case.validate_response(response, excluded_checks=excluded)


def test_without_the_token_every_operation_is_refused(api: tuple[str, Path]) -> None:
    base, _ = api
    for method, path in (("GET", "/healthz"), ("GET", "/v1/profiles"), ("POST", "/v1/runs")):
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-of-some-length"},
            {"Authorization": f"Basic {TOKEN}"},
        ):
            response = requests.request(
                method, f"{base}{path}", headers=headers, json={}, timeout=30
            )
            assert response.status_code == 401, (path, headers, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"].startswith("Bearer")
