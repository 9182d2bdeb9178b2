"""audit.records: every builder, called and written, validates against the shipped schema.

The cases are keyed by builder name and the set is compared with the module's public
functions, so a builder added without a case here fails this file.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from orchestrator.audit import records
from orchestrator.audit.log import DECISIONS, LOG_NAME, OPERATIONS, AuditLog, Sanitizer
from orchestrator.core.spec import RunResult
from tests.conftest import AUDIT_SCHEMA

ARGV = ("curl", "-H", "Authorization: Bearer abcdefghijklmnopqrstu", "https://example.test")
EXPIRES = datetime(2026, 3, 1, 14, 0, 0, tzinfo=UTC)
POLICY = records.PolicyFacts(
    mode="enforce",
    decision="unverified",
    reason="unverified: no rule covers 'curl'",
    rules=("default.policy:12",),
)
LAUNCH = records.Launch(
    profile="workspace",
    profile_source="flag",
    backend="native",
    workspace="/home/alice/proj",
    policy=POLICY,
)
OFF = records.Launch(
    profile="offline",
    profile_source="default",
    backend="docker",
    workspace="/srv/w",
    policy=records.PolicyFacts(mode="off"),
)
GRANT = "workspace-net for /home/alice/proj until 2026-03-01T14:00:00Z, by alice: pip"

CASES: dict[str, list[Callable[[], records.Record]]] = {
    "file_read": [
        lambda: records.file_read(path="/w/a.txt", profile="workspace", workspace="/w",
                                  allowed=True, reason="profile workspace", size=5),
        lambda: records.file_read(path="/w/.ssh/id", profile="workspace", workspace="/w",
                                  allowed=False, reason="hidden"),
    ],
    "file_write": [
        lambda: records.file_write(path="/w/.git/config", profile="workspace", workspace="/w",
                                   allowed=False, reason="protected path"),
        lambda: records.file_write(path="/w/a.txt", profile="workspace", workspace="/w",
                                   allowed=True, reason="profile workspace", size=3),
    ],
    "mcp_tool_called": [
        lambda: records.mcp_tool_called(tool="search", arguments={"q": "x", "token": "s3cr3t"},
                                        profile="offline", workspace="/w", allowed=True,
                                        reason="allowed"),
        lambda: records.mcp_tool_called(tool="delete", arguments=None, profile="offline",
                                        workspace="/w", allowed=False, reason="denied (delete)"),
    ],
    "mcp_tool_answered": [
        lambda: records.mcp_tool_answered(tool="search", arguments={}, profile="offline",
                                          workspace="/w", is_error=True),
        lambda: records.mcp_tool_answered(tool="search", arguments=None, profile="offline",
                                          workspace="/w", is_error=None),
    ],
    "command_allowed": [
        lambda: records.command_allowed(argv=ARGV, launch=LAUNCH, chosen_by="--profile"),
        lambda: records.command_allowed(argv=("true",), launch=OFF, chosen_by="the default"),
    ],
    "command_denied": [
        lambda: records.command_denied(argv=ARGV, error="unknown profile 'ofline'"),
        lambda: records.command_denied(
            argv=ARGV,
            error="the execution policy forbids this command: rm -rf /",
            profile="workspace",
            profile_source="file",
            policy=records.PolicyFacts(
                mode="enforce", decision="forbidden", reason="forbidden: x", approval="refused"
            ),
        ),
    ],
    "command_ended": [
        lambda: records.command_ended(
            argv=ARGV,
            launch=LAUNCH,
            result=RunResult(exit_code=0, backend="native", duration_s=0.25),
        ),
        lambda: records.command_ended(
            argv=ARGV,
            launch=OFF,
            result=RunResult(
                exit_code=137, backend="docker", duration_s=2, signal=9, oom_killed=True
            ),
            unaudited=3,
            credentials=[{"secret": "GH_TOKEN", "host": "api.github.com", "count": 2}],
        ),
    ],
    "approval": [
        lambda: records.approval(
            argv=ARGV,
            profile="workspace",
            workspace="/w",
            approved=True,
            approved_by="--approve",
            why="no rule covers 'curl'",
            policy=POLICY,
        ),
        lambda: records.approval(
            argv=ARGV,
            profile="workspace",
            workspace="/w",
            approved=False,
            approved_by="no terminal",
            why="no rule covers 'curl'",
            policy=POLICY,
        ),
    ],
    "profile_resolved": [
        lambda: records.profile_resolved(
            launch=LAUNCH, chosen_by="--profile", chain="flag=workspace; default=offline"
        )
    ],
    "profile_file_approved": [
        lambda: records.profile_file_approved(
            path="/w/.codex-profile", profile="workspace-net", approval="by alice at …"
        )
    ],
    "profile_file_revoked": [
        lambda: records.profile_file_revoked(path="/w/.codex-profile", had=True),
        lambda: records.profile_file_revoked(path="/w/.codex-profile", had=False),
    ],
    "profile_file_ignored": [
        lambda: records.profile_file_ignored(path="/w/.codex-profile", why="not approved")
    ],
    "backend_selected": [
        lambda: records.backend_selected(launch=LAUNCH, why="native: Landlock ABI 7"),
        lambda: records.backend_selected(
            launch=OFF, why="docker: engine 24", skipped=("podman: no socket",)
        ),
    ],
    "sandbox_setup_failed": [
        lambda: records.sandbox_setup_failed(argv=ARGV, launch=LAUNCH, error="no Landlock")
    ],
    "session_started": [
        lambda: records.session_started(
            launch=LAUNCH, name="ci-42", expires=datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
        ),
        lambda: records.session_started(
            launch=LAUNCH, name=None, expires=datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
        ),
    ],
    "session_refused": [
        lambda: records.session_refused(name=None, error="unknown profile 'x'"),
        lambda: records.session_refused(name="ci", error="no backend", profile="offline"),
    ],
    "session_stopped": [
        lambda: records.session_stopped(
            launch=LAUNCH, name="ci-42", why="idle for 1800s", execs=25, duration_s=12.5
        )
    ],
    "credential_refused": [
        lambda: records.credential_refused(
            launch=LAUNCH,
            target="evil.test:443",
            domain="evil.test",
            method="GET",
            secret="GH_TOKEN",  # noqa: S106 -- the name of a secret, never a value
            reason="the placeholder of secret GH_TOKEN was sent to evil.test:443, "
            "which it is not bound to",
        )
    ],
    "egress_refused": [
        lambda: records.egress_refused(
            launch=LAUNCH,
            refusal={"target": "a.test:80", "domain": "a.test", "method": "GET",
                     "reason": "secret K: its placeholder was sent in a URL", "secret": "K"},
        ),
        lambda: records.egress_refused(
            launch=LAUNCH,
            refusal={"target": "a.test:80", "domain": "a.test", "method": "GET",
                     "reason": "a.test:80 is not in network.allow"},
        ),
    ],
    "network_refused": [
        lambda: records.network_refused(
            launch=LAUNCH,
            target="evil.test:443",
            domain="evil.test",
            method="CONNECT",
            reason="evil.test is not allowed",
        )
    ],
    "elevation_granted": [
        lambda: records.elevation_granted(
            profile="workspace-net", workspace="/home/alice/proj", grant=GRANT, expires=EXPIRES
        )
    ],
    "elevation_refused": [
        lambda: records.elevation_refused(
            profile="trusted", workspace="/w", why="elevation not confirmed"
        )
    ],
    "elevation_used": [
        lambda: records.elevation_used(
            launch=LAUNCH, profile="workspace-net", grant=GRANT, expires=EXPIRES
        )
    ],
    "elevation_revoked": [
        lambda: records.elevation_revoked(
            profile="workspace-net", workspace="/w", grant=GRANT, expires=EXPIRES
        ),
        lambda: records.elevation_revoked(
            profile="unknown", workspace="", grant="/c/grants/x.json (its HMAC does not match)"
        ),
    ],
    "elevation_ignored": [
        lambda: records.elevation_ignored(
            profile="trusted", workspace="/w", path="/c/grants/x.json", why="expired"
        ),
        lambda: records.elevation_ignored(
            profile="unknown", workspace="", path="/c/grants", why="group-writable"
        ),
    ],
    "planted_repo": [
        lambda: records.planted_repo(
            launch=LAUNCH, where="/w/sub/.git", finding="the run planted …", quarantined=True
        ),
        lambda: records.planted_repo(
            launch=OFF, where="/w/.git/hooks", finding="the run changed …", quarantined=False
        ),
    ],
}
WRITER_FIELDS = {"timestamp", "seq", "prev", "session_id", "run_id"}


def builders() -> set[str]:
    return {
        name
        for name, fn in inspect.getmembers(records, inspect.isfunction)
        if fn.__module__ == records.__name__ and not name.startswith("_")
    }


def built() -> list[tuple[str, records.Record]]:
    return [(name, make()) for name, makers in CASES.items() for make in makers]


def test_every_builder_has_a_case_and_every_case_a_builder() -> None:
    assert builders() == set(CASES)


def test_every_operation_of_the_schema_has_a_builder() -> None:
    assert {record["operation"] for _, record in built()} == set(OPERATIONS)
    assert {record["decision"] for _, record in built()} == set(DECISIONS)


@pytest.mark.parametrize(("name", "record"), built(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_built_record_leaves_the_writers_fields_to_the_writer(
    name: str, record: records.Record
) -> None:
    assert not record.keys() & WRITER_FIELDS, name
    assert record["operation"] in OPERATIONS and record["decision"] in DECISIONS


def test_every_built_record_written_to_the_log_validates_against_the_schema(
    tmp_path: Path,
) -> None:
    log = AuditLog(tmp_path / LOG_NAME, sanitizer=Sanitizer(user="alice", home="/home/alice"))
    cases = built()
    for _, record in cases:
        log.append({"session_id": "s1", "run_id": "r1", **record})
    validator = jsonschema.Draft202012Validator(json.loads(AUDIT_SCHEMA.read_text()))
    lines = (tmp_path / LOG_NAME).read_text().splitlines()
    assert len(lines) == len(cases)
    for (name, _), line in zip(cases, lines, strict=True):
        written: dict[str, Any] = json.loads(line)
        errors = [e.message for e in validator.iter_errors(written)]
        assert not errors, f"{name}: {errors}"
        assert "abcdefghijklmnopqrstu" not in line and "alice" not in line, name


def test_the_run_ending_reason_says_how_it_ended() -> None:
    def reason(**kw: Any) -> str:
        result = RunResult(**{"exit_code": 0, "backend": "native", "duration_s": 0, **kw})
        return str(records.command_ended(argv=ARGV, launch=LAUNCH, result=result)["reason"])

    assert reason(exit_code=3) == "exited 3"
    assert reason(exit_code=130, signal=2) == "killed by signal 2"
    assert reason(exit_code=127, detail="command not found inside the sandbox: x") == (
        "command not found inside the sandbox: x"
    )


def test_a_policy_that_was_off_puts_only_its_mode_on_the_record() -> None:
    record = records.command_allowed(argv=ARGV, launch=OFF, chosen_by="x")
    assert record["policy_mode"] == "off"
    assert not {k for k in record if k.startswith("policy_") and k != "policy_mode"}


def test_an_ignored_grant_names_its_profile_only_as_the_target() -> None:
    record = records.elevation_ignored(profile="trusted", workspace="/w", path="/g", why="x")
    assert record["target"] == "trusted" and "profile" not in record
    used = records.elevation_used(
        launch=LAUNCH, profile="workspace-net", grant=GRANT, expires=EXPIRES
    )
    assert used["target"] == "workspace-net" and used["profile"] == LAUNCH.profile
    assert used["workspace"] == LAUNCH.workspace  # the run's, not the grant's directory
