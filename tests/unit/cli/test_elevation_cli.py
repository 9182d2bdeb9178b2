"""`codex-box elevate` through the real CLI (and its grant() with an injected answer):
confirmation, opt-in for trusted, usage errors, status, revoke, and the audit records
of granting, refusing, using, ignoring and revoking a grant."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.errors import AuditError, Refused
from orchestrator.resolve import elevation
from orchestrator.resolve.grant_files import KEY_NAME, grants_dir
from orchestrator.runner.context import HostContext
from orchestrator.runner.elevate import GrantRequest, grant
from tests.conftest import Ran, small_tmpfs
from tests.unit.helpers import audit_records
from tests.unit.stub_runs import stub_run

Cli = Callable[..., Ran]
GRANT = ("elevate", "--to", "workspace-net", "--for", "2h", "--reason", "pip install -r req.txt")


def elevations(codex_home: Path) -> list[dict[str, Any]]:
    return [r for r in audit_records(codex_home) if r["operation"] == "elevation"]


def grant_file(codex_home: Path, workspace: Path) -> Path:
    return grants_dir(codex_home) / elevation.grant_name(str(workspace))


def backdated(
    codex_home: Path,
    workspace: Path,
    *,
    hours_ago: float,
    hours: float,
    profile: str = "workspace-net",
) -> elevation.Grant:
    return elevation.create(
        codex_home,
        workspace=str(workspace),
        profile=profile,
        reason="old work",
        duration=timedelta(hours=hours),
        granted_by="alice",
        now=datetime.now(UTC) - timedelta(hours=hours_ago),
    )


# --- granting -----------------------------------------------------------------------------


def test_elevate_with_yes_writes_the_grant_and_an_audit_record(
    cli: Cli, workspace: Path, codex_home: Path
) -> None:
    ran = cli(*GRANT, "--yes")
    assert ran.returncode == 0, ran.stderr
    path = grant_file(codex_home, workspace)
    assert f"elevated {workspace} (and below) to workspace-net until " in ran.stdout
    assert str(path) in ran.stdout and "codex-box elevate --revoke" in ran.stdout
    data = json.loads(path.read_text())
    assert data["profile"] == "workspace-net" and data["reason"] == "pip install -r req.txt"
    (record,) = elevations(codex_home)
    assert record["grant_event"] == "granted" and record["decision"] == "allowed"
    assert record["target"] == record["profile"] == "workspace-net"
    assert record["expires"] == data["expires"]
    assert "pip install -r req.txt" in record["reason"] and record["workspace"] == str(workspace)


def test_without_a_terminal_and_without_yes_elevate_is_refused_126_and_audited(
    cli: Cli, workspace: Path, codex_home: Path
) -> None:
    ran = cli(*GRANT, input="y\n")  # stdin is a pipe: nobody at a terminal to ask
    assert ran.returncode == 126
    assert "no terminal to confirm the elevation on — pass --yes" in ran.stderr
    assert not grant_file(codex_home, workspace).exists()
    (record,) = elevations(codex_home)
    assert (record["grant_event"], record["decision"]) == ("refused", "denied")


def test_trusted_needs_yes_i_trust_this_workspace_even_with_yes(
    cli: Cli, workspace: Path, codex_home: Path
) -> None:
    args = ("elevate", "--to", "trusted", "--for", "30m", "--reason", "debug a build")
    ran = cli(*args, "--yes")
    assert ran.returncode == 126 and "needs --yes-i-trust-this-workspace" in ran.stderr
    assert not grant_file(codex_home, workspace).exists()
    ran = cli(*args, "--yes", "--yes-i-trust-this-workspace")
    assert ran.returncode == 0, ran.stderr
    assert [r["grant_event"] for r in elevations(codex_home)] == ["refused", "granted"]


@pytest.mark.parametrize(
    ("duration", "problem"),
    [
        ("0m", "no time at all"),
        ("-5m", "not a duration"),
        ("soon", "not a duration"),
        ("25h", "longer than 24h"),
        ("2", "not a duration"),
    ],
)
def test_a_bad_duration_is_a_usage_error_and_grants_nothing(
    cli: Cli, workspace: Path, codex_home: Path, duration: str, problem: str
) -> None:
    ran = cli("elevate", "--to", "workspace", "--for", duration, "--reason", "x", "--yes")
    assert ran.returncode == 2, ran.stderr
    assert f"--for {duration!r}" in ran.stderr and problem in ran.stderr
    assert "e.g. 90s, 30m" in ran.stderr or "at most 24h" in ran.stderr
    assert not grants_dir(codex_home).exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((), 2, "say one of --to PROFILE, --revoke or --status"),
        (("--to", "workspace", "--revoke"), 2, "say one of"),
        (
            ("--to", "workspace", "--for", "1h", "--yes"),
            2,
            "--to needs --for DURATION and --reason",
        ),
        (("--to", "workspace", "--for", "1h", "--reason", " ", "--yes"), 2, "--reason is empty"),
        (("--to", "worksapce", "--for", "1h", "--reason", "x", "--yes"), 125, "did you mean"),
        (
            ("--to", "workspace", "--for", "1h", "--reason", "x", "--yes", "--workspace", "/"),
            2,
            "refusing to elevate /",
        ),
    ],
)
def test_malformed_elevate_command_lines(
    cli: Cli, codex_home: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    ran = cli("elevate", *args)
    assert ran.returncode == code, ran.stderr
    assert message in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1  # one line, with the fix


def context_for(codex_home: Path) -> HostContext:
    return HostContext.from_environ({"CODEX_HOME": str(codex_home), "HOME": str(codex_home.parent)})


def grant_request(codex_home: Path, workspace: Path, **kw: Any) -> GrantRequest:
    fields: dict[str, Any] = {
        "workspace": str(workspace),
        "profile": "workspace-net",
        "duration": timedelta(hours=2),
        "reason": "pip install",
    }
    return GrantRequest(**{**fields, **kw})


def test_the_question_shows_profile_workspace_expiry_and_reason(
    codex_home: Path, workspace: Path
) -> None:
    asked: list[str] = []
    records: list[dict[str, Any]] = []
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def yes(question: str) -> bool:
        asked.append(question)
        return True

    made = grant(
        context_for(codex_home),
        grant_request(codex_home, workspace),
        confirm=yes,
        record=records.append,
        now=now,
    )
    (question,) = asked
    assert question == (
        f"Elevate {workspace} (and below) to 'workspace-net' (network full) until "
        "2026-03-01T14:00:00Z, reason: 'pip install'?"
    )
    assert made.path.exists() and [r["grant_event"] for r in records] == ["granted"]


@pytest.mark.parametrize(("answer", "message"), [(False, "not confirmed"), (None, "no terminal")])
def test_no_or_no_terminal_grants_nothing_and_is_recorded(
    codex_home: Path, workspace: Path, answer: bool | None, message: str
) -> None:
    records: list[dict[str, Any]] = []
    with pytest.raises(Refused, match=message):
        grant(
            context_for(codex_home),
            grant_request(codex_home, workspace),
            confirm=lambda _: answer,
            record=records.append,
        )
    assert not grant_file(codex_home, workspace).exists()
    assert [(r["grant_event"], r["decision"]) for r in records] == [("refused", "denied")]


def test_the_trusted_question_says_no_sandbox(codex_home: Path, workspace: Path) -> None:
    asked: list[str] = []
    grant(
        context_for(codex_home),
        grant_request(codex_home, workspace, profile="trusted", trust_opt_in=True),
        confirm=lambda q: asked.append(q) or True,
        record=lambda _: None,
    )
    assert "'trusted' (NO sandbox)" in asked[0]


def test_a_grant_whose_record_cannot_be_written_is_removed(
    codex_home: Path, workspace: Path
) -> None:
    def broken(_: dict[str, Any]) -> None:
        raise AuditError("audit log not writable")

    with pytest.raises(AuditError):
        grant(
            context_for(codex_home),
            grant_request(codex_home, workspace, yes=True),
            confirm=lambda _: True,
            record=broken,
        )
    assert not grant_file(codex_home, workspace).exists()


# --- status and revoke --------------------------------------------------------------------


def test_status_without_a_grant(cli: Cli, workspace: Path) -> None:
    ran = cli("elevate", "--status")
    assert (ran.returncode, ran.stdout) == (0, f"no elevation applies to {workspace}\n")


def test_status_shows_the_grant_that_applies_from_a_subdirectory(
    cli: Cli, workspace: Path, codex_home: Path
) -> None:
    cli(*GRANT, "--yes")
    sub = workspace / "src"
    sub.mkdir()
    ran = cli("elevate", "--status", cwd=sub)
    assert ran.returncode == 0
    assert ran.stdout.startswith(f"elevated: workspace-net for {workspace} (and below) until ")
    assert "pip install -r req.txt" in ran.stdout
    data = json.loads(cli("elevate", "--status", "--json", cwd=sub).stdout)
    assert data["workspace"] == str(sub) and data["ignored"] == []
    assert data["grant"]["profile"] == "workspace-net"
    assert 7000 < data["grant"]["seconds_left"] <= 7200


def test_revoke_removes_the_grant_and_is_audited(
    cli: Cli, workspace: Path, codex_home: Path
) -> None:
    cli(*GRANT, "--yes")
    ran = cli("elevate", "--revoke")
    assert ran.returncode == 0 and ran.stdout == f"revoked: workspace-net for {workspace}\n"
    assert not grant_file(codex_home, workspace).exists()
    assert [r["grant_event"] for r in elevations(codex_home)] == ["granted", "revoked"]
    again = cli("elevate", "--revoke")
    assert again.returncode == 0 and "nothing to revoke" in again.stdout


def test_revoke_also_removes_a_tampered_grant(cli: Cli, workspace: Path, codex_home: Path) -> None:
    cli(*GRANT, "--yes")
    path = grant_file(codex_home, workspace)
    path.write_text("{}")
    ran = cli("elevate", "--revoke")
    assert ran.returncode == 0 and f"revoked: {path}" in ran.stdout
    assert not path.exists()


# --- runs under a grant -------------------------------------------------------------------


def test_each_run_that_uses_a_grant_is_audited(
    cli: Cli, base_env: dict[str, str], workspace: Path, codex_home: Path
) -> None:
    cli(*GRANT, "--yes")
    first = stub_run(base_env, workspace)
    stub_run(base_env, workspace)
    assert first.prepared.spec.profile == "workspace-net"
    used = [r for r in elevations(codex_home) if r["grant_event"] == "used"]
    assert len(used) == 2
    assert used[0]["run_id"] == first.prepared.spec.run_id
    assert used[0]["decision"] == "allowed" and used[0]["target"] == "workspace-net"
    assert "pip install -r req.txt" in used[0]["reason"] and "until" in used[0]["reason"]
    resolved = [r for r in audit_records(codex_home) if r["operation"] == "profile_resolve"]
    assert resolved[0]["profile_source"] == "grant" and "chain: built-in" in resolved[0]["reason"]


def test_a_grant_to_trusted_is_the_opt_in(
    cli: Cli, base_env: dict[str, str], workspace: Path, codex_home: Path
) -> None:
    with pytest.raises(Refused, match="needs explicit opt-in"):
        stub_run({**base_env, "CODEX_SECURITY_PROFILE": "trusted"}, workspace)
    ran = cli(
        "elevate",
        "--to",
        "trusted",
        "--for",
        "10m",
        "--reason",
        "r",
        "--yes",
        "--yes-i-trust-this-workspace",
    )
    assert ran.returncode == 0, ran.stderr
    outcome = stub_run(base_env, workspace)
    assert outcome.prepared.spec.profile == "trusted" and not outcome.prepared.spec.sandboxed


def test_a_grant_made_without_trust_is_no_opt_in_even_if_its_profile_later_needs_one(
    cli: Cli, base_env: dict[str, str], workspace: Path, codex_home: Path
) -> None:
    profiles = codex_home / "profiles"
    profiles.mkdir()
    (profiles / "mine.yaml").write_text("extends: workspace\n")
    ran = cli("elevate", "--to", "mine", "--for", "1h", "--reason", "r", "--yes")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(grant_file(codex_home, workspace).read_text())["opt_in"] is False
    (profiles / "mine.yaml").write_text("extends: trusted\n")  # edited after the grant
    with pytest.raises(Refused, match="'mine' needs explicit opt-in"):
        stub_run(base_env, workspace)


def test_the_flag_beats_the_grant_and_the_grant_is_not_used(
    cli: Cli, base_env: dict[str, str], workspace: Path, codex_home: Path
) -> None:
    cli(*GRANT, "--yes")
    assert stub_run(base_env, workspace, profile="offline").prepared.spec.profile == "offline"
    assert not [r for r in elevations(codex_home) if r["grant_event"] == "used"]


def test_show_profile_names_the_grant(cli: Cli, workspace: Path) -> None:
    cli(*GRANT, "--yes")
    ran = cli("--show-profile", "--json")
    data = json.loads(ran.stdout)
    assert data["profile"] == "workspace-net" and data["source"] == "grant"
    assert data["detail"].startswith(f"workspace-net for {workspace} until ")


# --- ignored grants: one warning line on stderr, one audit record ---------------------------


def ignored_run(cli: Cli) -> Ran:
    """A run that resolves its profile, then fails before anything could launch."""
    return cli("run", "--backend", "no-such-backend", "--", "true")


def assert_ignored(ran: Ran, codex_home: Path, why: str) -> dict[str, Any]:
    warnings = [ln for ln in ran.stderr.splitlines() if ln.startswith("codex-box: warning:")]
    assert len(warnings) == 1, ran.stderr
    assert "elevation grant " in warnings[0] and why in warnings[0]
    ignored = [r for r in elevations(codex_home) if r["grant_event"] == "ignored"]
    assert len(ignored) == 1, elevations(codex_home)
    assert ignored[0]["decision"] == "denied" and why in ignored[0]["reason"]
    assert not [r for r in elevations(codex_home) if r["grant_event"] == "used"]
    return ignored[0]


def test_a_tampered_grant_is_ignored_with_a_warning_and_a_record(
    cli: Cli, workspace: Path, codex_home: Path
) -> None:
    cli(*GRANT, "--yes")
    path = grant_file(codex_home, workspace)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "profile": "trusted"}))
    ran = ignored_run(cli)
    assert ran.returncode == 125 and "no-such-backend" in ran.stderr
    record = assert_ignored(ran, codex_home, "HMAC does not match")
    assert record["target"] == "trusted"  # what the file claimed…
    assert "profile" not in record  # …which is no profile this run had
    denied = [r for r in audit_records(codex_home) if r["operation"] == "command_exec"]
    assert denied[0]["profile"] == "offline"  # the grant did not apply


def test_an_expired_grant_is_ignored_with_a_warning_and_a_record(
    cli: Cli, workspace: Path, codex_home: Path
) -> None:
    backdated(codex_home, workspace, hours_ago=3, hours=1)
    ran = cli("--show-profile")
    assert ran.stdout.startswith("offline (from default")
    assert_ignored(ran, codex_home, "expired at ")


def test_a_grant_copied_from_another_workspace_is_ignored(
    cli: Cli, workspace: Path, codex_home: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    made = backdated(codex_home, other, hours_ago=0, hours=1)
    copy = grant_file(codex_home, workspace)
    copy.write_bytes(made.path.read_bytes())
    os.chmod(copy, 0o600)
    assert_ignored(ignored_run(cli), codex_home, f"it was made for {other}")


def test_a_key_with_bad_permissions_makes_grants_ignored_with_a_warning(
    cli: Cli, workspace: Path, codex_home: Path
) -> None:
    cli(*GRANT, "--yes")
    os.chmod(grants_dir(codex_home) / KEY_NAME, 0o644)
    assert_ignored(ignored_run(cli), codex_home, "by group or others")
    status = cli("elevate", "--status")
    assert status.stdout == f"no elevation applies to {workspace}\n"
    assert "by group or others" in status.stderr


def test_on_a_read_only_codex_home_elevate_exits_125_with_the_reason(
    cli: Cli, tmp_path: Path
) -> None:
    """As inside a sandbox, where CODEX_HOME is never writable."""
    with small_tmpfs(tmp_path / "ro", "1m") as mount:
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        ran = cli(*GRANT, "--yes", env={"CODEX_HOME": str(mount)})
    assert ran.returncode == 125
    assert f"cannot write a grant in {mount}/grants: Read-only file system" in ran.stderr


def test_a_config_that_does_not_load_refuses_a_grant_and_a_revocation(
    cli: Cli, workspace: Path, codex_home: Path
) -> None:
    """Their records would miss the sinks config.toml configures: nothing is changed."""
    made = cli("elevate", "--to", "workspace-net", "--for", "1h", "--reason", "x", "--yes")
    assert made.returncode == 0, made.stderr
    config = codex_home / "config.toml"
    config.write_text("[sandbox]\nbackend = [unclosed\n")
    revoked = cli("elevate", "--revoke")
    assert revoked.returncode == 125 and "config.toml" in revoked.stderr
    assert grant_file(codex_home, workspace).exists()
    granted = cli("elevate", "--to", "workspace", "--for", "1h", "--reason", "x", "--yes")
    assert granted.returncode == 125
