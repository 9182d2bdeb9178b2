"""`codex-box audit …` through the real CLI: filters, --json/--jsonl that jq accepts,
summary, tail (-f), verify; [audit] settings; a log that cannot be written stops the
launch (125) on a full and on a read-only filesystem."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.audit.log import AuditLog, Sanitizer
from tests.conftest import CODEX_BOX, Ran, small_tmpfs


def seed(codex_home: Path) -> None:
    """Six chained records: what three refused runs and one allowed run leave."""
    log = AuditLog(codex_home / "audit.log", sanitizer=Sanitizer(user="", home=""))
    rows = [("denied", "offline", "rm -rf /"), ("denied", "offline", "rm -rf /"),
            ("denied", "workspace", "curl x | sh"), ("allowed", "workspace", "make"),
            ("requires_approval", "workspace", "python3 x.py"), ("allowed", "offline", "ls")]
    for i, (decision, profile, target) in enumerate(rows):
        operation = "approval" if decision == "requires_approval" else "command_exec"
        log.append({"operation": operation, "decision": decision, "profile": profile,
                    "target": target, "reason": "r", "session_id": f"s{i % 2}",
                    "run_id": f"r{i}", "phase": "decided", "outcome": "refused",
                    "approved_by": "no terminal"} if operation == "approval" else
                   {"operation": operation, "decision": decision, "profile": profile,
                    "target": target, "reason": "r", "session_id": f"s{i % 2}",
                    "run_id": f"r{i}", "phase": "decided"})  # fmt: skip


def test_list_filters_combine_and_json_is_one_array_jsonl_one_per_line(
    cli: Callable[..., Ran], codex_home: Path
) -> None:
    seed(codex_home)
    array = json.loads(cli("audit", "--json", "--profile", "workspace").stdout)
    assert [r["target"] for r in array] == ["curl x | sh", "make", "python3 x.py"]
    lines = cli("audit", "--jsonl", "--decision", "denied", "--session", "s0").stdout
    assert [json.loads(ln)["target"] for ln in lines.splitlines()] == ["rm -rf /", "curl x | sh"]
    if shutil.which("jq"):
        jq = subprocess.run(["jq", "-r", ".[].target"], input=cli("audit", "--json").stdout,
                            capture_output=True, text=True, check=True)  # fmt: skip
        assert jq.stdout.splitlines()[0] == "rm -rf /"


def test_summary_counts_and_top_denied(cli: Callable[..., Ran], codex_home: Path) -> None:
    seed(codex_home)
    summary = json.loads(cli("audit", "summary", "--json").stdout)
    assert summary["records"] == 6
    assert summary["by_decision"] == {"denied": 3, "allowed": 2, "requires_approval": 1}
    assert summary["by_profile"] == {"offline": 3, "workspace": 3}
    assert summary["top_denied"][0] == {"target": "rm -rf /", "count": 2}
    text = cli("audit", "summary").stdout
    assert "top denied:" in text and "2  rm -rf /" in text


def test_verify_passes_then_names_the_first_broken_record(
    cli: Callable[..., Ran], codex_home: Path
) -> None:
    seed(codex_home)
    ok = cli("audit", "verify")
    assert ok.returncode == 0 and "chain intact: 6 records in 1 file(s)" in ok.stdout
    log = codex_home / "audit.log"
    lines = log.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace("rm -rf /", "ls -la")  # hide a denial
    log.write_text("".join(lines))
    broken = cli("audit", "verify")
    assert broken.returncode == 1 and broken.stdout == ""
    assert f"{log}:3: chain broken at seq 3: the record before it was changed" in broken.stderr
    report = json.loads(cli("audit", "verify", "--json").stdout)
    assert report["ok"] is False and report["records"] == 6


def test_tail_prints_the_last_records_and_follows_new_ones(
    cli: Callable[..., Ran], codex_home: Path, base_env: dict[str, str]
) -> None:
    seed(codex_home)
    last = cli("audit", "tail", "-n", "2", "--jsonl").stdout.splitlines()
    assert [json.loads(ln)["target"] for ln in last] == ["python3 x.py", "ls"]
    follower = subprocess.Popen([CODEX_BOX, "audit", "tail", "-f", "-n", "0", "--jsonl"],
                                env=base_env, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(1.0)  # let it reach the end of the log before the new record
        AuditLog(codex_home / "audit.log", sanitizer=Sanitizer(user="", home="")).append(
            {"operation": "command_exec", "decision": "denied", "target": "new one",
             "reason": "r", "session_id": "s", "run_id": "r9", "phase": "decided"})  # fmt: skip
        assert follower.stdout is not None
        line = follower.stdout.readline()  # bounded by the timeout below via kill
        assert json.loads(line)["target"] == "new one"
    finally:
        follower.kill()
        follower.wait(timeout=10)


@pytest.mark.parametrize(
    ("config", "what"),
    [("[audit]\nkeep = 0\n", "'audit.keep' must be a whole number ≥ 1"),
     ("[audit]\nmax_bytes = 10\n", "'audit.max_bytes' must be a whole number ≥ 4096"),
     ("[audit]\nrotate = 1\n", "unknown key 'audit.rotate'"),
     ('[audit]\nsyslog = "yes"\n', "'audit.syslog' must be true or false")],
)
def test_bad_audit_settings_are_one_line_naming_the_file(
    cli: Callable[..., Ran], codex_home: Path, config: str, what: str
) -> None:
    (codex_home / "config.toml").write_text(config)
    ran = cli("run", "--", "true")
    assert ran.returncode == 125 and what in ran.stderr and "config.toml" in ran.stderr


def test_a_second_jsonl_sink_gets_every_record(
    cli: Callable[..., Ran], codex_home: Path, tmp_path: Path
) -> None:
    siem = tmp_path / "siem.jsonl"
    (codex_home / "config.toml").write_text(
        f'[policy]\nmode = "audit-only"\n[audit]\njsonl = "{siem}"\n')
    cli("run", "--profile", "ofline", "--", "true")  # refused: one denied record
    assert siem.read_text() == (codex_home / "audit.log").read_text()


@pytest.fixture
def tiny_home(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "tiny", "32k") as mount:
        yield mount


@pytest.mark.parametrize("state", ["full", "read-only"])
def test_an_audit_log_that_cannot_be_written_stops_the_launch(
    cli: Callable[..., Ran], tiny_home: Path, workspace: Path, state: str
) -> None:
    (tiny_home / "config.toml").write_text('[policy]\nmode = "audit-only"\n')
    if state == "full":
        filler = tiny_home / "filler"
        with filler.open("wb") as handle, contextlib.suppress(OSError):
            handle.write(b"x" * 64 * 1024)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(tiny_home)], check=True)
    marker = workspace / "ran"
    ran = cli("run", "--profile", "trusted", "--yes-i-trust-this-workspace", "--",
              "touch", str(marker), env={"CODEX_HOME": str(tiny_home)})  # fmt: skip
    assert ran.returncode == 125, ran.stderr
    assert "cannot write audit log" in ran.stderr and "nothing is launched" in ran.stderr
    assert not marker.exists()



def test_secrets_on_the_command_line_never_reach_the_log(
    cli: Callable[..., Ran], codex_home: Path, home: Path
) -> None:
    secrets = ["hunter2-pass", "ghp_" + "a1B2" * 9, "sk-proj-" + "Z9y8X7w6" * 3,
               "AKIA" + "ABCDEFGHIJKLMNOP", "s3cr3t-bearer-token-value"]  # fmt: skip
    ran = cli("run", "--policy-mode", "enforce", "--", "curl", "-H",
              f"Authorization: Bearer {secrets[4]}", f"https://bob:{secrets[0]}@example.invalid",
              f"GITHUB_TOKEN={secrets[1]}", f"--api-key={secrets[2]}", secrets[3],
              f"{home}/notes")  # fmt: skip
    assert ran.returncode == 126  # unverified, no terminal: refused and recorded
    text = (codex_home / "audit.log").read_text()
    assert not [s for s in secrets if s in text], text
    assert "[REDACTED]" in text and "[USER]/notes" in text and str(home) not in text


def test_the_syslog_sink_sends_each_record_to_dev_log(
    cli: Callable[..., Ran], codex_home: Path
) -> None:
    import socket

    dev_log = Path("/dev/log")
    if os.geteuid() != 0 or dev_log.exists():
        pytest.skip("needs root and no syslog daemon: the test listens on /dev/log itself")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        listener.bind(str(dev_log))
        listener.settimeout(10)
        (codex_home / "config.toml").write_text('[audit]\nsyslog = true\n')
        cli("run", "--profile", "ofline", "--", "true")  # refused: one denied record
        message = listener.recv(65536).decode()
    finally:
        listener.close()
        dev_log.unlink(missing_ok=True)
    record = json.loads(message[message.index("{"):])
    assert message.startswith("<")  # a syslog priority: authpriv.info
    assert record == json.loads((codex_home / "audit.log").read_text())
