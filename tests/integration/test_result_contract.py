"""The result contract (orchestrator/runner/result.schema.json) holds for every front
door: ``run --json``, ``exec --json``, the local API, and the GitLab driver's
``run --json`` — and what it cites is true: each ``audit`` seq is a record of that very
launch in the log, and ``decision`` is the policy's."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import REPO, Ran
from tests.escape.conftest import scratch_root
from tests.gitlab_runner import FakeRunner

SCHEMA = json.loads((REPO / "orchestrator" / "runner" / "result.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def checked(result: dict[str, Any], codex_home: Path) -> dict[str, Any]:
    errors = sorted(e.message for e in VALIDATOR.iter_errors(result))
    assert not errors, f"{result}: {errors}"
    records = {}
    for line in (codex_home / "audit.log").read_text().splitlines():
        record = json.loads(line)
        records[record["seq"]] = record
    assert result["audit"], "a launch cites its records"
    for seq in result["audit"]:
        assert records[seq]["run_id"] == result["run_id"], (seq, records[seq])
    operations = [records[seq]["operation"] for seq in result["audit"]]
    assert operations[-1] == "command_exec" and "exited" in records[result["audit"][-1]]["reason"]
    return result


def last_json_line(text: str) -> dict[str, Any]:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def test_schema_is_valid_and_refuses_what_it_must() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    good = {
        "version": 1, "run_id": "0123456789ab", "session_id": "x", "session": None,
        "profile": "offline", "backend": "native", "exit_code": 0, "signal": None,
        "timed_out": False, "oom_killed": False, "duration_ms": 5, "detail": "",
        "decision": "safe", "audit": [1, 2],
    }
    assert not list(VALIDATOR.iter_errors(good))
    for broken in (
        {**good, "version": 2},
        {**good, "decision": "maybe"},
        {k: v for k, v in good.items() if k != "audit"},
        {**good, "exit_code": "0"},
    ):
        assert list(VALIDATOR.iter_errors(broken)), broken


def test_run_json(sandbox: Callable[..., Ran], codex_home: Path) -> None:
    done = sandbox("offline", "sh", "-c", "exit 3", flags=("--json",))
    result = checked(last_json_line(done.stderr), codex_home)
    assert (result["exit_code"], result["session"], result["decision"]) == (3, None, "unverified")
    done = sandbox("offline", "true", flags=("--json",))
    assert checked(last_json_line(done.stderr), codex_home)["decision"] == "safe"


def test_exec_json(native_available: None, cli: Callable[..., Ran], codex_home: Path) -> None:
    started = cli("session", "start", "--profile", "offline", "--backend", "native", "--name", "rc")
    assert started.returncode == 0, started.stderr
    try:
        done = cli("exec", "--json", "--session", "rc", "--", "true")
        assert done.returncode == 0, done.stderr
        result = checked(last_json_line(done.stderr), codex_home)
        assert result["session"] == "rc" and result["session_id"] == started.stdout.strip()
    finally:
        cli("session", "stop", "rc")


def test_the_api(serve_factory: Any, workspace: Path, codex_home: Path) -> None:
    with serve_factory() as served:
        raw = served.client()._json(
            "POST", "/v1/runs", {"argv": ["true"], "profile": "offline", "backend": "native",
                                 "workspace": str(workspace)},
        )
    result = checked(raw, codex_home)
    assert result["decision"] == "safe"


@pytest.fixture
def scratch() -> Iterator[Path]:
    yield from scratch_root("cbx-rc")


def test_the_gitlab_driver(
    native_available: None, base_env: dict[str, str], codex_home: Path, scratch: Path
) -> None:
    runner = FakeRunner(
        {**base_env, "CODEX_BOX_BACKEND": "native"}, scratch / "tmp" / "runner",
        builds_root=str(scratch / "builds"),
    )
    assert runner.config().returncode == 0
    assert runner.prepare().returncode == 0
    try:
        assert runner.run("get_sources", 'mkdir -p "$CI_PROJECT_DIR"').returncode == 0
        done = runner.call("run", "--json", str(runner.script("step_script", "exit 4")),
                           "step_script")
        result = checked(last_json_line(done.stderr), codex_home)
        assert result["exit_code"] == 4 and result["session"] == f"gl-{runner.job_id}"
    finally:
        assert runner.cleanup().returncode == 0
