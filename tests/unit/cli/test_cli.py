"""The real CLI in a subprocess: bad input never launches anything and is audited.

Every refusal test asks for a command that would leave a marker file if it ever ran,
checks the exact reason on stderr (so a test cannot pass for another reason, such as a
missing kernel feature), and checks the audit log: one denied record, nothing allowed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.core.profile import DEFAULT_PROTECTED
from orchestrator.resolve import approval as profile_approval
from tests.conftest import Ran
from tests.unit.helpers import audit_records

Cli = Callable[..., Ran]


@pytest.fixture
def marker(workspace: Path) -> Path:
    return workspace / "launched"


def touch(marker: Path) -> tuple[str, ...]:
    return ("--", "touch", str(marker))


def assert_refused_and_audited(
    ran: Ran, *, code: int, stderr: str, marker: Path, codex_home: Path
) -> dict[str, Any]:
    assert ran.returncode == code, (ran.returncode, ran.stderr)
    assert stderr in ran.stderr, ran.stderr
    assert not marker.exists(), "the command ran"
    records = audit_records(codex_home)
    assert [r["decision"] for r in records] == ["denied"], records
    denied = records[0]
    assert denied["operation"] == "command_exec"
    assert denied["target"] == f"touch {marker}"
    assert denied["phase"] == "decided"
    # The record is sanitized: the home directory (CODEX_HOME's parent here) is [USER].
    assert stderr.replace(str(codex_home.parent), "[USER]") in denied["reason"]
    return denied


# --- refusals before launch -------------------------------------------------------------


def test_unknown_profile_exits_125_with_a_suggestion_and_launches_nothing(
    cli: Cli, marker: Path, codex_home: Path
) -> None:
    ran = cli("run", "--profile", "ofline", *touch(marker), input="")
    assert_refused_and_audited(
        ran, code=125, stderr="unknown profile 'ofline'", marker=marker, codex_home=codex_home
    )
    assert "did you mean 'offline'?" in ran.stderr


def test_malformed_user_profile_exits_125_naming_file_and_line(
    cli: Cli, marker: Path, codex_home: Path
) -> None:
    path = codex_home / "profiles" / "mine.yaml"
    path.parent.mkdir()
    path.write_text("extends: workspace\nnetwork: [none\n")
    ran = cli("run", "--profile", "mine", *touch(marker), input="")
    assert_refused_and_audited(
        ran, code=125, stderr=f"{path}:3: malformed YAML", marker=marker, codex_home=codex_home
    )


def test_loosening_user_profile_exits_125_and_launches_nothing(
    cli: Cli, marker: Path, codex_home: Path
) -> None:
    path = codex_home / "profiles" / "mine.yaml"
    path.parent.mkdir()
    path.write_text("extends: workspace\nprocess:\n  sandboxed: false\n")
    ran = cli("run", "--profile", "mine", *touch(marker), input="")
    assert_refused_and_audited(
        ran,
        code=125,
        stderr=f"{path}:3: key 'process.sandboxed': loosens",
        marker=marker,
        codex_home=codex_home,
    )


def test_malformed_config_toml_exits_125_naming_the_file(
    cli: Cli, marker: Path, codex_home: Path
) -> None:
    config = codex_home / "config.toml"
    config.write_text("[sandbox\n")
    ran = cli("run", "--profile", "workspace", *touch(marker), input="")
    assert_refused_and_audited(
        ran, code=125, stderr=f"{config}: malformed TOML", marker=marker, codex_home=codex_home
    )


def test_run_without_a_command_is_a_usage_error(cli: Cli, codex_home: Path) -> None:
    for args in (("run",), ("run", "--profile", "workspace"), ("run", "--")):
        ran = cli(*args, input="")
        assert ran.returncode == 2, (args, ran.stderr)
        assert "no command given" in ran.stderr
    # Nothing was decided, so nothing was launched or recorded as allowed.
    assert all(r["decision"] != "allowed" for r in audit_records(codex_home))


def test_unknown_backend_exits_125_with_the_choices(
    cli: Cli, marker: Path, codex_home: Path
) -> None:
    ran = cli("run", "--backend", "dockr", "--profile", "workspace", *touch(marker), input="")
    denied = assert_refused_and_audited(
        ran, code=125, stderr="unknown backend 'dockr'", marker=marker, codex_home=codex_home
    )
    assert "choose one of: auto, docker, podman, native, kubernetes" in ran.stderr
    assert denied["profile"] == "workspace"


def test_unknown_backend_from_the_environment_is_refused_too(
    cli: Cli, marker: Path, codex_home: Path
) -> None:
    ran = cli("run", *touch(marker), env={"CODEX_BOX_BACKEND": "nope"}, input="")
    assert_refused_and_audited(
        ran, code=125, stderr="unknown backend 'nope'", marker=marker, codex_home=codex_home
    )


def test_trusted_without_opt_in_and_without_a_tty_exits_126_and_is_audited(
    cli: Cli, marker: Path, codex_home: Path
) -> None:
    ran = cli("run", "--profile", "trusted", *touch(marker), input="")
    denied = assert_refused_and_audited(
        ran,
        code=126,
        stderr="profile 'trusted' needs explicit opt-in",
        marker=marker,
        codex_home=codex_home,
    )
    assert "--yes-i-trust-this-workspace" in ran.stderr
    assert denied["profile"] == "trusted" and denied["profile_source"] == "flag"


def test_trusted_alias_from_the_environment_without_opt_in_exits_126(
    cli: Cli, marker: Path, codex_home: Path
) -> None:
    ran = cli("run", *touch(marker), env={"CODEX_SECURITY_PROFILE": "danger-full-access"}, input="")
    denied = assert_refused_and_audited(
        ran, code=126, stderr="needs explicit opt-in", marker=marker, codex_home=codex_home
    )
    assert denied["profile_source"] == "env"


@pytest.mark.parametrize("opt_in", [(), ("--yes-i-trust-this-workspace",)])
def test_a_codex_profile_selecting_trusted_exits_126_even_with_opt_in(
    cli: Cli, marker: Path, codex_home: Path, workspace: Path, opt_in: tuple[str, ...]
) -> None:
    (workspace / ".codex-profile").write_text("trusted\n")
    ran = cli("run", *opt_in, *touch(marker), input="")
    assert_refused_and_audited(
        ran,
        code=126,
        stderr="which a .codex-profile may never select",
        marker=marker,
        codex_home=codex_home,
    )
    assert str(workspace / ".codex-profile") in ran.stderr


def test_an_unwritable_audit_log_exits_125_and_the_command_does_not_run(
    cli: Cli,
    marker: Path,
    codex_home: Path,
    print_env: dict[str, str],
) -> None:
    (codex_home / "audit.log").mkdir()
    # trusted + opt-in: if it were launched, nothing at all would stop the marker.
    ran = cli(
        "run",
        "--profile",
        "trusted",
        "--yes-i-trust-this-workspace",
        *touch(marker),
        env=print_env,
        input="",
    )
    assert ran.returncode == 125, ran.stderr
    assert f"cannot write audit log {codex_home / 'audit.log'}" in ran.stderr
    assert not marker.exists()
    assert list((codex_home / "audit.log").iterdir()) == []


def test_an_unwritable_audit_log_does_not_hide_the_original_refusal(
    cli: Cli, marker: Path, codex_home: Path
) -> None:
    (codex_home / "audit.log").mkdir()
    ran = cli("run", "--profile", "trusted", *touch(marker), input="")
    assert ran.returncode == 125  # the audit failure wins: nothing may go unrecorded
    assert "cannot write audit log" in ran.stderr
    assert not marker.exists()


# --- --print-spec: inspect what would run, run nothing ----------------------------------


def print_spec(cli: Cli, env: dict[str, str], *args: str) -> dict[str, Any]:
    ran = cli("run", "--print-spec", "--backend", "native", *args, env=env, input="")
    assert ran.returncode == 0, ran.stderr
    data: dict[str, Any] = json.loads(ran.stdout)
    return data


def test_print_spec_shows_the_plan_for_the_codex_profile_and_runs_nothing(
    cli: Cli,
    marker: Path,
    workspace: Path,
    codex_home: Path,
    print_env: dict[str, str],
) -> None:
    (workspace / ".codex-profile").write_text("workspace\n")
    # Wider than the default: it applies once approved (test_profile_approval.py).
    profile_approval.approve(
        codex_home, workspace.resolve() / ".codex-profile", b"workspace\n", profile="workspace",
        approved_by="test",
    )
    data = print_spec(cli, print_env, *touch(marker))
    plan = data["request"]
    ws = str(workspace.resolve())
    assert data["backend"] == "native"
    assert plan["argv"] == ["touch", str(marker)]
    assert plan["cwd"] == ws
    assert plan["network"] == "none"
    assert plan["mounts"]["writable_roots"] == [ws]
    assert plan["mounts"]["protected"] == [f"{ws}/{n}" for n in DEFAULT_PROTECTED]
    assert plan["env"]["CODEX_BOX_PROFILE"] == "workspace"
    assert not marker.exists()
    assert audit_records(codex_home) == []


def test_print_spec_withholds_secrets_unless_named_with_env(
    cli: Cli, print_env: dict[str, str]
) -> None:
    env = {**print_env, "GITHUB_TOKEN": "ghp_x", "AWS_SECRET_ACCESS_KEY": "aws_x"}
    plan = print_spec(cli, env, "--env", "GITHUB_TOKEN", "--env", "FOO=bar", "--", "true")[
        "request"
    ]
    assert plan["env"]["GITHUB_TOKEN"] == env["GITHUB_TOKEN"]
    assert plan["env"]["FOO"] == "bar"
    assert "AWS_SECRET_ACCESS_KEY" not in plan["env"]
    assert plan["env"]["CODEX_SANDBOX_NETWORK_DISABLED"] == "1"  # default: offline


def test_print_spec_carries_the_limits(cli: Cli, print_env: dict[str, str]) -> None:
    plan = print_spec(cli, print_env, "--memory", "1g", "--pids", "64", "--", "true")[
        "request"
    ]
    assert plan["limits"] == {"memory_bytes": 1024**3, "pids": 64, "memory_required": True}


def test_print_spec_for_trusted_with_opt_in_shows_no_sandbox_and_runs_nothing(
    cli: Cli, marker: Path, print_env: dict[str, str]
) -> None:
    plan = print_spec(
        cli,
        print_env,
        "--profile",
        "trusted",
        "--yes-i-trust-this-workspace",
        *touch(marker),
    )["request"]
    assert plan["sandbox"] is False and "landlock" not in plan
    assert not marker.exists()


def test_a_bad_limit_is_refused_before_anything_runs(
    cli: Cli, marker: Path, codex_home: Path
) -> None:
    ran = cli("run", "--memory", "lots", *touch(marker), input="")
    assert_refused_and_audited(
        ran,
        code=2,  # a malformed flag value is a usage error
        stderr="--memory 'lots' is not a size",
        marker=marker,
        codex_home=codex_home,
    )


def test_a_profile_flag_before_run_is_not_silently_ignored(
    cli: Cli, print_env: dict[str, str]
) -> None:
    env = {**print_env, "CODEX_SECURITY_PROFILE": "workspace-net"}
    ran = cli("--profile", "offline", "run", "--print-spec", "--backend", "native", "--", "true",
              env=env, input="")
    assert ran.returncode == 2 or json.loads(ran.stdout)["request"]["network"] == "none"


def test_a_mistyped_run_option_is_a_usage_error_not_the_command(cli: Cli, codex_home: Path) -> None:
    # --backend nope first: even today nothing can be launched by this test.
    ran = cli("run", "--backend", "nope", "--profle", "workspace", "--", "true", input="")
    assert ran.returncode == 2, ran.stderr
    assert "--profle" in ran.stderr


# --- --show-profile ---------------------------------------------------------------------


def show(cli: Cli, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    ran = cli("--show-profile", "--json", *args, env=env, input="")
    assert ran.returncode == 0, ran.stderr
    data: dict[str, Any] = json.loads(ran.stdout)
    return data


def test_show_profile_reports_the_default(cli: Cli) -> None:
    data = show(cli)
    assert (data["profile"], data["source"], data["detail"]) == (
        "offline",
        "default",
        "built-in default",
    )
    assert data["summary"] == "network none; reads everything; writes nothing"


def test_show_profile_reports_the_config(cli: Cli, codex_home: Path) -> None:
    (codex_home / "config.toml").write_text('sandbox_mode = "workspace-write"\n')
    data = show(cli)
    assert (data["profile"], data["source"]) == ("workspace", "config")
    assert data["detail"] == str(codex_home / "config.toml")


def test_show_profile_reports_the_codex_profile_file(
    cli: Cli, codex_home: Path, workspace: Path
) -> None:
    (codex_home / "config.toml").write_text('sandbox_mode = "workspace-write"\n')
    (workspace / ".codex-profile").write_text("net-read-only\n")
    assert cli("profiles", "allow").returncode == 0  # it widens the network: approve it
    data = show(cli)
    assert (data["profile"], data["source"]) == ("net-read-only", "file")
    assert data["detail"] == str(workspace.resolve() / ".codex-profile")


def test_show_profile_reports_the_environment(cli: Cli, workspace: Path) -> None:
    (workspace / ".codex-profile").write_text("net-read-only\n")
    data = show(cli, env={"CODEX_SECURITY_PROFILE": "workspace-net"})
    assert (data["profile"], data["source"], data["detail"]) == (
        "workspace-net",
        "env",
        "CODEX_SECURITY_PROFILE",
    )


def test_show_profile_reports_the_flag(cli: Cli) -> None:
    data = show(cli, "--profile", "workspace-write", env={"CODEX_SECURITY_PROFILE": "offline"})
    assert (data["profile"], data["source"], data["detail"]) == (
        "workspace",
        "flag",
        "--profile workspace-write",
    )


def test_show_profile_as_text_names_the_profile_and_its_source(cli: Cli) -> None:
    ran = cli("--show-profile", input="")
    assert ran.returncode == 0
    assert ran.stdout.startswith("offline (from default (built-in default))")


def test_show_profile_with_a_trusted_codex_profile_exits_126(cli: Cli, workspace: Path) -> None:
    (workspace / ".codex-profile").write_text("trusted\n")
    ran = cli("--show-profile", input="")
    assert ran.returncode == 126
    assert "may never select" in ran.stderr


def test_show_profile_with_malformed_config_exits_125(cli: Cli, codex_home: Path) -> None:
    (codex_home / "config.toml").write_text("sandbox_mode = \n")
    ran = cli("--show-profile", input="")
    assert ran.returncode == 125
    assert str(codex_home / "config.toml") in ran.stderr


# --- profiles ---------------------------------------------------------------------------


def test_profiles_lists_the_five_built_ins_and_the_aliases(cli: Cli) -> None:
    ran = cli("profiles", input="")
    assert ran.returncode == 0
    rows = {line.split()[0] for line in ran.stdout.splitlines()[1:6]}
    assert rows == {"offline", "net-read-only", "workspace", "workspace-net", "trusted"}
    assert (
        "aliases: read-only → offline, workspace-write → workspace, danger-full-access → trusted"
    ) in ran.stdout


def test_profiles_lists_user_profiles_with_their_origin(cli: Cli, codex_home: Path) -> None:
    path = codex_home / "profiles" / "build.yaml"
    path.parent.mkdir()
    path.write_text("extends: workspace-net\nnetwork: none\n")
    ran = cli("profiles", "--json", input="")
    assert ran.returncode == 0
    listed = {p["name"]: p for p in json.loads(ran.stdout)}
    assert len(listed) == 6
    assert listed["build"]["extends"] == "workspace-net"
    assert listed["build"]["origin"] == str(path)
    assert listed["build"]["network"] == "none"


def test_profiles_show_prints_the_full_definition(cli: Cli) -> None:
    ran = cli("profiles", "show", "workspace", input="")
    assert ran.returncode == 0
    data = yaml.safe_load(ran.stdout)
    assert data["name"] == "workspace"
    assert data["network"] == "none"
    assert data["filesystem"] == {
        "root": "read-only",
        "workspace": "read-write",
        "private_tmp": True,
        "writable_paths": [],
        "protected_paths": list(DEFAULT_PROTECTED),
    }
    assert data["process"]["sandboxed"] is True
    assert data["process"]["seccomp"] == "offline"
    assert data["allows"] == {"network": False, "write": True, "full_write": False}


def test_profiles_show_accepts_an_alias(cli: Cli) -> None:
    ran = cli("profiles", "show", "danger-full-access", "--json", input="")
    data = json.loads(ran.stdout)
    assert data["name"] == "trusted" and data["process"]["requires_opt_in"] is True


def test_profiles_show_unknown_name_exits_125_with_a_suggestion(cli: Cli) -> None:
    ran = cli("profiles", "show", "worksapce", input="")
    assert ran.returncode == 125
    assert "did you mean 'workspace'?" in ran.stderr


# --- audit ------------------------------------------------------------------------------


def test_audit_decision_denied_json_prints_only_denied_records(cli: Cli, codex_home: Path) -> None:
    log = codex_home / "audit.log"
    entries = [
        {
            "timestamp": "2026-01-01T00:00:00.000Z",
            "operation": "command_exec",
            "target": "a",
            "decision": "allowed",
            "session_id": "s",
        },
        {
            "timestamp": "2026-01-01T00:00:01.000Z",
            "operation": "command_exec",
            "target": "b",
            "decision": "denied",
            "session_id": "s",
        },
        {
            "timestamp": "2026-01-01T00:00:02.000Z",
            "operation": "command_exec",
            "target": "c",
            "decision": "requires_approval",
            "session_id": "s",
        },
        {
            "timestamp": "2026-01-01T00:00:03.000Z",
            "operation": "command_exec",
            "target": "d",
            "decision": "denied",
            "session_id": "s",
        },
    ]
    log.write_text("".join(json.dumps(e) + "\n" for e in entries))
    ran = cli("audit", "--decision", "denied", "--jsonl", input="")
    assert ran.returncode == 0, ran.stderr
    printed = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [p["target"] for p in printed] == ["b", "d"]
    assert all(p["decision"] == "denied" for p in printed)


def test_audit_shows_the_records_of_refused_runs(cli: Cli, marker: Path, codex_home: Path) -> None:
    cli("run", "--profile", "trusted", *touch(marker), input="")
    cli("run", "--profile", "ofline", *touch(marker), input="")
    ran = cli("audit", "--decision", "denied", "--jsonl", input="")
    printed = [json.loads(line) for line in ran.stdout.splitlines()]
    assert len(printed) == 2
    assert "needs explicit opt-in" in printed[0]["reason"]
    assert "unknown profile" in printed[1]["reason"]


def test_audit_with_an_unknown_decision_is_a_usage_error_with_a_suggestion(cli: Cli) -> None:
    ran = cli("audit", "--decision", "deny", input="")
    assert ran.returncode == 2
    assert "did you mean 'denied'?" in ran.stderr


def test_audit_with_a_bad_time_exits_125(cli: Cli) -> None:
    ran = cli("audit", "--since", "last tuesday", input="")
    assert ran.returncode == 125
    assert "30m, 2h, 7d" in ran.stderr
