"""Runs that get past the execution policy, on the native sandbox: safe and match
commands launch without a question; an unverified one launches only when approved
(on the terminal, once, or by --approve), and the approval is audited either way;
audit-only records what enforce would have refused while the sandbox still confines.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.audit.log import LOG_NAME
from tests.conftest import CODEX_BOX, Ran

ENFORCE = ("--policy-mode", "enforce")
NATIVE = ("--backend", "native")


def records(codex_home: Path) -> list[dict[str, Any]]:
    """The launch's own records (approval, command_exec): profile_resolve and
    backend_select records are tested in tests/unit/audit/test_audit_chain.py."""
    every = [json.loads(ln) for ln in (codex_home / LOG_NAME).read_text().splitlines()]
    return [r for r in every if r["operation"] in ("approval", "command_exec")]


def test_a_safe_command_runs_without_a_question_and_its_decision_is_audited(
    native_available: None, cli: Callable[..., Ran], codex_home: Path, workspace: Path
) -> None:
    (workspace / "notes.txt").write_text("kept\n")
    ran = cli("run", *ENFORCE, *NATIVE, "--", "cat", "notes.txt")
    assert ran.returncode == 0 and ran.stdout == "kept\n"
    decided, ended = records(codex_home)
    assert decided["policy_decision"] == "safe" and decided["decision"] == "allowed"
    assert ended["phase"] == "ended" and ended["exit_code"] == 0


def test_a_match_inside_the_workspace_runs_under_a_write_profile(
    native_available: None, cli: Callable[..., Ran], codex_home: Path, workspace: Path
) -> None:
    ran = cli("run", *ENFORCE, *NATIVE, "--profile", "workspace", "--",
              "bash", "-c", "mkdir -p out && echo built | tee out/log.txt")
    assert ran.returncode == 0, ran.stderr
    assert (workspace / "out" / "log.txt").read_text() == "built\n"
    assert records(codex_home)[0]["policy_decision"] == "match"


def test_approve_runs_an_unverified_command_and_the_approval_is_audited(
    native_available: None, cli: Callable[..., Ran], codex_home: Path
) -> None:
    ran = cli("run", *ENFORCE, *NATIVE, "--approve", "--", "python3", "-c", "print(6 * 7)")
    assert ran.returncode == 0 and ran.stdout == "42\n"
    approval, decided, ended = records(codex_home)
    assert approval["operation"] == "approval" and approval["outcome"] == "approved"
    assert approval["approved_by"] == "--approve"
    assert decided["approval"] == "--approve" and decided["policy_decision"] == "unverified"
    assert ended["exit_code"] == 0


def _on_a_terminal(argv: list[str], env: dict[str, str], cwd: Path, answer: str) -> tuple[int, str]:
    """Run argv with a pty as stdin and stderr; answer the first prompt with ``answer``."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=subprocess.PIPE, stderr=slave, env=env,
                            cwd=cwd, start_new_session=True)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 30
    answered = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break  # the child closed the terminal
                seen += chunk
                if not answered and b"[y/N]" in seen:
                    os.write(master, answer.encode() + b"\n")
                    answered = True
            if proc.poll() is not None and not ready:
                break
        assert proc.stdout is not None
        stdout = proc.stdout.read().decode()
        proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert answered, f"no prompt seen: {seen!r}"
    assert seen.count(b"[y/N]") == 1, "asked once"
    return proc.returncode, stdout


@pytest.mark.parametrize(
    ("answer", "code", "outcome"), [("y", 0, "approved"), ("n", 126, "refused")]
)
def test_on_a_terminal_an_unverified_command_is_asked_about_once(
    native_available: None, base_env: dict[str, str], codex_home: Path, workspace: Path,
    answer: str, code: int, outcome: str,
) -> None:
    returncode, stdout = _on_a_terminal(
        [CODEX_BOX, "run", *ENFORCE, *NATIVE, "--", "python3", "-c", "print('ran')"],
        base_env, workspace, answer)
    assert returncode == code
    assert (stdout == "ran\n") is (outcome == "approved")
    approval = records(codex_home)[0]
    assert approval["outcome"] == outcome and approval["approved_by"] == "terminal"


def test_audit_only_records_a_forbidden_command_and_the_sandbox_still_confines_it(
    native_available: None, cli: Callable[..., Ran], codex_home: Path
) -> None:
    target = Path("/etc/codex-box-policy-audit-only")
    ran = cli("run", "--policy-mode", "audit-only", *NATIVE, "--profile", "workspace", "--",
              "sh", "-c", f"echo x > {target}")
    assert ran.returncode != 0 and not target.exists()
    decided = records(codex_home)[0]
    assert decided["decision"] == "allowed" and decided["policy_mode"] == "audit-only"
    assert decided["policy_decision"] == "forbidden" and str(target) in decided["policy_reason"]


def test_policy_off_evaluates_nothing(
    native_available: None, cli: Callable[..., Ran], codex_home: Path
) -> None:
    ran = cli("run", "--policy-mode", "off", *NATIVE, "--", "python3", "-c", "print(1)")
    assert ran.returncode == 0
    decided = records(codex_home)[0]
    assert decided["policy_mode"] == "off" and "policy_decision" not in decided
