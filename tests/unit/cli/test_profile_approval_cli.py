"""`codex-box profiles allow | deny | allowed` and the approval state in `profiles
explain`, through the real CLI with a temporary CODEX_HOME: the warning a run prints
for an ignored .codex-profile, approving and revoking it, and their audit records."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.resolve import approval as profile_approval
from tests.conftest import AUDIT_ONLY_CONFIG, Ran
from tests.unit.helpers import audit_records

Cli = Callable[..., Ran]


@pytest.fixture
def planted(workspace: Path, codex_home: Path) -> Path:
    """The attack of issue 17: a `workspace` run (config.toml) wrote sub/.codex-profile."""
    (codex_home / "config.toml").write_text(
        AUDIT_ONLY_CONFIG + '[sandbox]\nprofile = "workspace"\n'
    )
    sub = workspace / "sub"
    sub.mkdir()
    path = sub / ".codex-profile"
    path.write_text("workspace-net\n")
    return path


def show(cli: Cli, where: Path) -> tuple[dict[str, Any], str]:
    ran = cli("--show-profile", "--json", cwd=where)
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout), ran.stderr


def approvals(codex_home: Path) -> list[dict[str, Any]]:
    return [
        r for r in audit_records(codex_home) if r.get("approval_event") in ("approved", "revoked")
    ]


def test_a_planted_wider_file_is_ignored_with_a_one_line_warning_naming_the_fix(
    cli: Cli, planted: Path
) -> None:
    data, stderr = show(cli, planted.parent)
    assert (data["profile"], data["source"]) == ("workspace", "config")
    assert data["profile_files"][0]["state"] == "ignored"
    (line,) = stderr.splitlines()
    assert line.startswith(f"codex-box: warning: {planted} ignored: 'workspace-net' is wider ")
    assert line.endswith(f"if you trust it, run `codex-box profiles allow {planted}`")


def test_allow_approves_the_file_that_applies_here_and_a_run_then_uses_it(
    cli: Cli, planted: Path, codex_home: Path
) -> None:
    ran = cli("profiles", "allow", cwd=planted.parent)
    assert ran.returncode == 0, ran.stderr
    digest = profile_approval.digest(str(planted), planted.read_bytes())
    assert ran.stdout.splitlines()[0] == (
        f"approved {planted} (sha256 {digest[:12]}): selects workspace-net"
    )
    assert "wider than 'workspace' there: network.mode none → full" in ran.stdout
    assert f"codex-box profiles deny {planted}" in ran.stdout
    data, stderr = show(cli, planted.parent)
    assert (data["profile"], data["source"], stderr) == ("workspace-net", "file", "")
    (record,) = approvals(codex_home)
    assert record["operation"] == "profile_resolve" and record["decision"] == "allowed"
    assert record["target"] == str(planted) and record["profile"] == "workspace-net"
    assert record["reason"].startswith(f"approved {planted}, which selects workspace-net (by ")


def test_allow_takes_the_file_or_its_directory_as_path(
    cli: Cli, planted: Path, workspace: Path
) -> None:
    assert cli("profiles", "allow", "sub").returncode == 0
    assert cli("profiles", "allow", "sub/.codex-profile").returncode == 0
    assert show(cli, planted.parent)[0]["profile"] == "workspace-net"


def test_editing_an_approved_file_ignores_it_again(cli: Cli, planted: Path) -> None:
    assert cli("profiles", "allow", str(planted)).returncode == 0
    planted.write_text("workspace-net  # still fine?\n")
    data, stderr = show(cli, planted.parent)
    assert data["profile"] == "workspace"
    assert "was edited after it was approved" in stderr


def test_deny_revokes_the_approval_and_is_audited(
    cli: Cli, planted: Path, codex_home: Path
) -> None:
    assert cli("profiles", "allow", str(planted)).returncode == 0
    ran = cli("profiles", "deny", str(planted))
    assert (ran.returncode, ran.stdout) == (0, f"revoked the approval of {planted}\n")
    assert show(cli, planted.parent)[0]["profile"] == "workspace"
    again = cli("profiles", "deny", str(planted))
    assert (again.returncode, again.stdout) == (0, f"{planted} was not approved\n")
    events = [(r["approval_event"], r["reason"]) for r in approvals(codex_home)]
    assert [e for e, _ in events] == ["approved", "revoked", "revoked"]
    assert events[1][1] == f"revoked the approval of {planted}"
    assert events[2][1] == f"nothing to revoke: no approval of {planted}"


def test_allowed_lists_each_approval_and_whether_the_file_still_matches(
    cli: Cli, planted: Path
) -> None:
    assert cli("profiles", "allowed").stdout.startswith("no approved .codex-profile")
    assert cli("profiles", "allow", str(planted)).returncode == 0
    digest = profile_approval.digest(str(planted), planted.read_bytes())
    line = cli("profiles", "allowed").stdout.strip()
    assert line.startswith(f"{planted}  sha256 {digest[:12]}  workspace-net  ")
    assert line.endswith("  matches")
    planted.write_text("workspace-net\n\n")
    (row,) = json.loads(cli("profiles", "allowed", "--json").stdout)
    assert (row["path"], row["sha256"], row["state"]) == (str(planted), digest, "edited")
    assert row["approved"].endswith("Z") and row["approved_by"]
    planted.unlink()
    assert cli("profiles", "allowed").stdout.strip().endswith("  missing")


def test_allowed_shows_a_forged_approval_as_invalid(
    cli: Cli, planted: Path, codex_home: Path
) -> None:
    assert cli("profiles", "allow", str(planted)).returncode == 0
    (made,) = profile_approval.approvals_dir(codex_home).glob("*.json")
    made.write_text(made.read_text().replace("workspace-net", "trusted"))
    assert "invalid: its HMAC does not match" in cli("profiles", "allowed").stdout


def test_allow_never_approves_a_file_selecting_trusted(
    cli: Cli, workspace: Path, codex_home: Path
) -> None:
    (workspace / ".codex-profile").write_text("trusted\n")
    ran = cli("profiles", "allow")
    assert ran.returncode == 126
    assert "which a .codex-profile may never select" in ran.stderr
    assert not profile_approval.approvals_dir(codex_home).exists()
    assert approvals(codex_home) == []


@pytest.mark.parametrize(
    ("args", "setup", "code", "message"),
    [
        ((), None, 2, "no .codex-profile at or above"),
        (("notes.txt",), "notes.txt", 2, "notes.txt is not a .codex-profile"),
        (("gone/.codex-profile",), None, 2, "does not exist"),
        ((), "", 2, "is empty: it selects nothing"),
    ],
)
def test_allow_without_a_file_to_approve_is_a_usage_error(
    cli: Cli, workspace: Path, args: tuple[str, ...], setup: str | None, code: int, message: str
) -> None:
    if setup == "notes.txt":
        (workspace / "notes.txt").write_text("workspace-net\n")
    elif setup == "":
        (workspace / ".codex-profile").write_text("# nothing\n")
        args = (".codex-profile",)
    ran = cli("profiles", "allow", *args, cwd=workspace)
    assert ran.returncode == code and message in ran.stderr, ran.stderr


def test_allow_of_a_malformed_file_exits_125_naming_it(cli: Cli, workspace: Path) -> None:
    path = workspace / ".codex-profile"
    path.write_text("extends: workspace\nnetwork: full\n")
    ran = cli("profiles", "allow")
    assert ran.returncode == 125 and f"{path}:2: key 'network.mode': loosens" in ran.stderr


def test_explain_shows_the_approval_state_of_each_file_in_text_and_json(
    cli: Cli, planted: Path, workspace: Path
) -> None:
    out = cli("profiles", "explain", cwd=planted.parent).stdout
    assert ".codex-profile approval, nearest first:" in out
    assert f"  {planted}  selects workspace-net\n" in out
    assert "ignored: wider than 'workspace' (network.mode none → full; " in out
    assert f"run `codex-box profiles allow {planted}`" in out
    assert cli("profiles", "allow", str(planted)).returncode == 0
    data = json.loads(cli("profiles", "explain", "--json", cwd=planted.parent).stdout)
    (entry,) = data["profile_files"]
    assert entry["state"] == "approved" and entry["approval"].startswith("by ")
    (workspace / "sub" / "inner").mkdir()
    (workspace / "sub" / "inner" / ".codex-profile").write_text("offline\n")
    inner = cli("profiles", "explain", cwd=workspace / "sub" / "inner").stdout
    assert "narrows: not wider than 'workspace-net', applies without approval" in inner


def test_the_audit_listing_shows_approval_events(cli: Cli, planted: Path) -> None:
    assert cli("profiles", "allow", str(planted)).returncode == 0
    assert cli("profiles", "deny", str(planted)).returncode == 0
    listing = cli("audit").stdout
    assert "approved" in listing and "revoked" in listing
