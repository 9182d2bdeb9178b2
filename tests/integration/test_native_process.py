"""Process-level promises of the native backend: privileges, environment, exit codes,
timeouts, limits, streaming, audit records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import CODEX_BOX, REPO, SANDBOX_PYTHON

SANDBOXED = ("offline", "net-read-only", "workspace", "workspace-net")


def _status_fields(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in text.splitlines())}


@pytest.mark.parametrize("profile", SANDBOXED)
def test_the_child_has_no_capabilities_no_new_privs_and_a_seccomp_filter(sandbox, profile):
    ran = sandbox(profile, "cat", "/proc/self/status")
    assert ran.returncode == 0, ran.stderr
    fields = _status_fields(ran.stdout)
    for key in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"):
        assert int(fields[key], 16) == 0, key
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"


@pytest.mark.parametrize("profile", SANDBOXED)
def test_the_child_sees_only_its_own_processes(sandbox, profile):
    ran = sandbox(profile, "sh", "-c", "ls /proc | grep -E '^[0-9]+$' | wc -l")
    assert ran.returncode == 0, ran.stderr
    assert int(ran.stdout) <= 5  # init, sh, ls, grep, wc


def test_a_secret_looking_host_variable_is_absent_unless_named(sandbox):
    env = {"MY_SECRET_TOKEN": "s3cr3t-value", "PLAIN_SETTING": "visible"}
    withheld = sandbox("offline", "env", env=env)
    assert "s3cr3t-value" not in withheld.stdout
    assert "PLAIN_SETTING=visible" in withheld.stdout
    passed = sandbox("offline", "env", flags=("--env", "MY_SECRET_TOKEN"), env=env)
    assert "MY_SECRET_TOKEN=s3cr3t-value" in passed.stdout


def test_the_exit_code_passes_through(sandbox):
    assert sandbox("offline", "sh", "-c", "exit 42").returncode == 42


def test_death_by_signal_exits_128_plus_n(sandbox):
    ran = sandbox("offline", "sh", "-c", "kill -TERM $$", flags=("--json",))
    assert ran.returncode == 128 + signal.SIGTERM
    result = json.loads(ran.stderr.strip().splitlines()[-1])
    assert result["signal"] == signal.SIGTERM


def test_a_missing_command_exits_127(sandbox):
    ran = sandbox("offline", "definitely-not-a-command-xyz")
    assert ran.returncode == 127
    assert "definitely-not-a-command-xyz" in ran.stderr


def test_stdin_reaches_the_command_and_stdout_comes_back(sandbox):
    ran = sandbox("offline", "tr", "a-z", "A-Z", input="hello sandbox\n")
    assert ran.returncode == 0
    assert ran.stdout == "HELLO SANDBOX\n"


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def test_timeout_exits_124_quickly_and_leaves_no_process_behind(sandbox):
    marker = f"codex-box-timeout-{uuid.uuid4().hex[:8]}"
    # A background sleeper that double-forks away from the command must die too.
    script = f"(setsid sh -c 'exec -a {marker}-bg sleep 60' &) ; exec -a {marker} sleep 60"
    started = time.monotonic()
    ran = sandbox("offline", "bash", "-c", script, flags=("--timeout", "2"))
    elapsed = time.monotonic() - started
    assert ran.returncode == 124, ran.stderr
    assert elapsed < 5, f"took {elapsed:.1f}s"
    assert "timed out" in ran.stderr
    time.sleep(0.3)
    assert _processes_with(marker) == []


def test_background_processes_do_not_outlive_a_normal_exit(sandbox):
    marker = f"codex-box-leftover-{uuid.uuid4().hex[:8]}"
    ran = sandbox("workspace", "bash", "-c",
                  f"(setsid bash -c 'exec -a {marker} sleep 60' &); echo started")
    assert ran.returncode == 0 and "started" in ran.stdout
    time.sleep(0.3)
    assert _processes_with(marker) == []


def test_killing_codex_box_takes_the_sandbox_with_it(native_available, base_env, workspace):
    marker = f"codex-box-orphan-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [CODEX_BOX, "run", "--backend", "native", "--profile",
         "offline", "--", "bash", "-c", f"exec -a {marker} sleep 60"],
        cwd=workspace, env=base_env)
    deadline = time.monotonic() + 10
    while not _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(marker), "the sandboxed command never started"
    proc.kill()  # SIGKILL: codex-box gets no chance to clean up
    proc.wait()
    deadline = time.monotonic() + 5
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(marker) == []


PROCESS_HOG = """
import subprocess
children = []
try:
    for _ in range(40):
        children.append(subprocess.Popen(["sleep", "5"]))
except OSError as exc:
    print("refused", exc.errno)
print("started", len(children))
for child in children:
    child.kill()
"""


def test_a_process_limit_is_enforced(sandbox):
    ran = sandbox("offline", SANDBOX_PYTHON, "-c", PROCESS_HOG,
                  flags=("--pids", "16", "--timeout", "20"))
    assert "refused 11" in ran.stdout, ran.stdout + ran.stderr  # EAGAIN
    started = int(ran.stdout.split("started")[1].split()[0])
    assert 5 < started < 16
    unlimited = sandbox("offline", SANDBOX_PYTHON, "-c", PROCESS_HOG, flags=("--timeout", "20"))
    assert "started 40" in unlimited.stdout, "control: without --pids all 40 start"


def test_a_memory_limit_is_enforced_and_reported(sandbox):
    hog = "b = bytearray(400 * 1024 * 1024); print('allocated', len(b))"
    ran = sandbox("offline", SANDBOX_PYTHON, "-c", hog,
                  flags=("--memory", "128m", "--json", "--timeout", "30"))
    assert "allocated" not in ran.stdout
    assert ran.returncode != 0
    if os.geteuid() == 0:  # cgroup path: the OOM killer fires and is reported
        result = json.loads(ran.stderr.strip().splitlines()[-1])
        assert result["oom_killed"] is True
        assert ran.returncode == 128 + signal.SIGKILL


def test_every_launch_is_audited_before_and_after(sandbox, codex_home):
    ran = sandbox("workspace", "sh", "-c", "exit 7")
    assert ran.returncode == 7
    records = [json.loads(ln) for ln in (codex_home / "audit.log").read_text().splitlines()]
    assert [r["phase"] for r in records] == ["decided", "ended"]
    decided, ended = records
    assert decided["decision"] == "allowed" and decided["profile"] == "workspace"
    assert decided["backend"] == "native" and decided["run_id"] == ended["run_id"]
    assert ended["exit_code"] == 7 and ended["duration_ms"] >= 0
    assert decided["target"] == "sh -c 'exit 7'"


def test_the_home_directory_is_sanitized_in_audit_records(sandbox, codex_home, home):
    sandbox("offline", "ls", str(home))
    log = (codex_home / "audit.log").read_text()
    assert str(home) not in log
    assert "[USER]" in log


def test_the_launcher_ignores_a_planted_package_in_the_workspace(sandbox, workspace):
    """`python -I`: the cwd (the workspace) is not on the launcher's import path."""
    evidence = Path(f"/var/tmp/codex-box-planted-{uuid.uuid4().hex[:8]}")
    planted = workspace / "orchestrator"
    planted.mkdir()
    (planted / "__init__.py").write_text(f"open('{evidence}','w').write('x')\n")
    (planted / "native").mkdir()
    (planted / "native" / "__init__.py").write_text(f"open('{evidence}','w').write('x')\n")
    ran = sandbox("offline", "true")
    assert ran.returncode == 0, ran.stderr
    assert not evidence.exists()


def test_python_dash_m_orchestrator_is_the_cli(base_env):
    ran = subprocess.run([sys.executable, "-m", "orchestrator", "--version"], cwd=REPO,
                         env=base_env, capture_output=True, text=True, check=False)
    assert ran.returncode == 0 and ran.stdout.startswith("codex-box ")


def test_dash_t_without_a_terminal_gives_the_command_a_private_tty(sandbox):
    ran = sandbox("offline", "sh", "-c", "test -t 0 && test -t 1 && echo on-a-tty; "
                  "read line; echo got:$line", flags=("-t",), input="typed\n")
    assert ran.returncode == 0, ran.stderr
    assert "on-a-tty" in ran.stdout
    assert "got:typed" in ran.stdout
    assert ran.stdout.count("typed") == 1, "input must not be echoed into the output"


def test_without_dash_t_a_pipe_stays_a_pipe(sandbox):
    ran = sandbox("offline", "sh", "-c", "test -t 0 || echo not-a-tty", input="")
    assert "not-a-tty" in ran.stdout


def test_dash_t_honours_the_timeout(sandbox):
    started = time.monotonic()
    ran = sandbox("offline", "sleep", "30", flags=("-t", "--timeout", "1"))
    assert ran.returncode == 124
    assert time.monotonic() - started < 5
