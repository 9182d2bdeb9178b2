"""Process-level promises of the native backend: privileges, environment, exit codes,
timeouts, limits, streaming, audit records."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.conftest import CODEX_BOX, REPO
from tests.procs import marker_for, processes_with


def test_killing_codex_box_takes_the_sandbox_with_it(native_available, base_env, workspace):
    marker, set_m = marker_for("orphan")
    proc = subprocess.Popen(
        [CODEX_BOX, "run", "--backend", "native", "--profile",
         "offline", "--", "bash", "-c", f'{set_m}; exec -a "$M" sleep 60'],
        cwd=workspace, env=base_env)
    deadline = time.monotonic() + 10
    while not processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker), "the sandboxed command never started"
    proc.kill()  # SIGKILL: codex-box gets no chance to clean up
    proc.wait()
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == []


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


def test_dash_t_keeps_the_timeout_even_when_the_command_reads_nothing(
        native_available, base_env, workspace):
    """A full pty must not block the relay past --timeout (found by review)."""
    started = time.monotonic()
    feeder = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
    try:
        ran = subprocess.run([CODEX_BOX, "run", "--backend", "native", "-t", "--timeout", "2",
                              "--", "sleep", "15"], stdin=feeder.stdout, cwd=workspace,
                             env=base_env, capture_output=True, timeout=30, check=False)
    finally:
        feeder.kill()
        feeder.wait()
    assert ran.returncode == 124
    assert time.monotonic() - started < 8
