"""Sessions through the real CLI (issue 20): state persists across execs, two sessions
of one profile cannot see each other, an exec's tree ends with it, exit codes pass,
``--detach``, bad input, the Python API. Every backend where the issue says so.

Lifecycle (stop, SIGKILL + gc, idle, lifetime), audit and who may use a session:
test_session_lifecycle.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import SANDBOX_PYTHON
from tests.procs import processes_with

from .session_helpers import (
    exec_in as _exec,
)
from .session_helpers import (
    session_starter,
    sleeper,
    unique_seconds,
    wait_until,
)

LIST_PROCESSES = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null; echo; done"

ABSTRACT = r"""
import socket, sys, time
name = "\0" + sys.argv[2]
if sys.argv[1] == "listen":
    s = socket.socket(socket.AF_UNIX)
    s.bind(name)
    s.listen(8)
    end = time.monotonic() + 120
    while time.monotonic() < end:
        c, _ = s.accept()
        c.sendall(b"HELLO")
        c.close()
else:
    for _ in range(50):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(name)
            print("CONNECTED", s.recv(5).decode())
            break
        except OSError as exc:
            err = exc.errno
            s.close()
            time.sleep(0.1)
    else:
        print("REFUSED", err)
"""

# Connects to a session's control socket (the directory given; the socket is reached
# through an O_PATH descriptor, so the path's length does not matter) and asks "info".
CONTROL = r"""
import json, os, socket, struct, sys
try:
    fd = os.open(sys.argv[1], os.O_PATH | os.O_DIRECTORY)
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(f"/proc/self/fd/{fd}/control.sock")
except OSError as exc:
    print("UNREACHABLE", exc.errno)
    raise SystemExit(0)
data = json.dumps({"op": "info"}).encode()
try:
    s.sendall(struct.pack(">I", len(data)) + data)
except BrokenPipeError:
    pass  # the keeper refuses a stranger without reading; its answer is still queued
got = b""
try:
    while len(got) < 4 or len(got) < 4 + struct.unpack(">I", got[:4])[0]:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
except OSError as exc:
    print("RECV-FAILED", exc.errno)
print("ANSWER", got[4:].decode(errors="replace"))
"""


@pytest.fixture
def sessions(cli, codex_home):
    yield from session_starter(cli, codex_home)


def test_tmp_and_the_working_directory_persist_across_execs(backend, cli, sessions, workspace):
    sid = sessions(backend)
    first = _exec(cli, sid, "sh", "-c", "echo kept-$$ > /tmp/state; mkdir -p sub/deeper")
    assert first.returncode == 0, first.stderr
    moved = _exec(cli, sid, "pwd", flags=("--cwd", "sub"))
    assert moved.stdout.strip() == str(workspace / "sub"), moved.stdout + moved.stderr
    # No --cwd: the last one sticks, as a shell's cd does; a relative one is from there.
    later = _exec(cli, sid, "sh", "-c", "pwd; cat /tmp/state")
    assert later.returncode == 0, later.stderr
    lines = later.stdout.split()
    assert lines[0] == str(workspace / "sub")
    assert lines[1].startswith("kept-")
    deeper = _exec(cli, sid, "pwd", flags=("--cwd", "deeper"))
    assert deeper.stdout.strip() == str(workspace / "sub" / "deeper")
    # The workspace is the real one: what an exec wrote there is on the host.
    assert (workspace / "sub" / "deeper").is_dir()
    # Control: a one-shot run has a /tmp of its own; the session's file is not in it.
    other = cli("run", "--backend", backend, "--profile", "workspace", "--",
                "sh", "-c", "cat /tmp/state || echo none")
    assert "kept-" not in other.stdout and "none" in other.stdout, other.stdout + other.stderr


def test_two_sessions_of_one_profile_see_neither_each_others_processes_nor_tmp(
        backend, cli, sessions):
    a, b = sessions(backend), sessions(backend)
    seconds = unique_seconds()
    detached = _exec(cli, a, "sleep", str(seconds), flags=("--detach",))
    assert detached.returncode == 0, detached.stderr
    assert _exec(cli, a, "sh", "-c", "echo secret-of-a > /tmp/a-only").returncode == 0
    in_a = _exec(cli, a, "sh", "-c", LIST_PROCESSES + "; ls /tmp")
    in_b = _exec(cli, b, "sh", "-c", LIST_PROCESSES + "; ls /tmp")
    assert f"sleep {seconds}" in in_a.stdout, "control: A sees its own detached process"
    assert "a-only" in in_a.stdout, "control: A sees its own /tmp"
    assert in_b.returncode == 0, in_b.stderr
    assert f"sleep {seconds}" not in in_b.stdout, "B sees a process of A"
    assert "a-only" not in in_b.stdout, "B sees A's /tmp"
    assert processes_with(sleeper(seconds)), "control: the detached sleep runs on the host"


def test_an_abstract_socket_in_one_session_is_unreachable_from_another(backend, cli, sessions):
    a, b = sessions(backend), sessions(backend)
    name = f"codex-box-session-{os.urandom(4).hex()}"
    listening = _exec(cli, a, SANDBOX_PYTHON, "-I", "-c", ABSTRACT, "listen", name,
                      flags=("--detach",))
    assert listening.returncode == 0, listening.stderr
    from_a = _exec(cli, a, SANDBOX_PYTHON, "-I", "-c", ABSTRACT, "connect", name)
    assert "CONNECTED HELLO" in from_a.stdout, "control: " + from_a.stdout + from_a.stderr
    from_b = _exec(cli, b, SANDBOX_PYTHON, "-I", "-c", ABSTRACT, "connect", name)
    assert "REFUSED" in from_b.stdout and "CONNECTED" not in from_b.stdout, \
        from_b.stdout + from_b.stderr


def test_an_exec_cannot_reach_another_sessions_control_socket(
        backend, cli, sessions, workspace, codex_home):
    """CODEX_HOME lies inside both sessions' (read-only) workspace: B's control socket is in A's
    view of the filesystem. Whether A cannot see it or the keeper refuses A, A gets no
    answer; the test process itself (the control) does."""
    inner = workspace / "state" / "codex-home"
    inner.mkdir(parents=True)
    (inner / "config.toml").write_text((codex_home / "config.toml").read_text())
    env = {"CODEX_HOME": str(inner)}
    a = b = None
    try:
        # Read-only: a writable workspace may not hold CODEX_HOME (codex-box refuses).
        a = sessions(backend, profile="offline", env=env)
        b = sessions(backend, profile="offline", env=env)
        directory = str(inner / "sessions" / b)
        host = subprocess.run([sys.executable, "-I", "-c", CONTROL, directory],
                              capture_output=True, text=True, timeout=30)
        assert '"event":"info"' in host.stdout, "control: " + host.stdout + host.stderr
        inside = _exec(cli, a, SANDBOX_PYTHON, "-I", "-c", CONTROL, directory, env=env)
        assert inside.returncode == 0, inside.stderr
        assert '"event":"info"' not in inside.stdout, f"A talked to B's keeper: {inside.stdout}"
        assert "UNREACHABLE" in inside.stdout or "may not use" in inside.stdout, inside.stdout
        # Nor its own: an exec cannot drive the session it runs in.
        own = _exec(cli, a, SANDBOX_PYTHON, "-I", "-c", CONTROL, str(inner / "sessions" / a),
                    env=env)
        assert '"event":"info"' not in own.stdout, f"an exec talked to its keeper: {own.stdout}"
    finally:
        for sid in (a, b):
            if sid:
                cli("session", "stop", sid, env=env, timeout=90)


def test_a_background_process_started_by_an_exec_is_gone_when_it_returns(
        backend, cli, sessions):
    sid = sessions(backend)
    seconds = unique_seconds()
    ran = _exec(cli, sid, "sh", "-c",
                f"setsid sleep {seconds} & (nohup sleep {seconds} >/dev/null 2>&1 &); "
                "sleep 0.3; echo started")
    assert ran.returncode == 0 and "started" in ran.stdout, ran.stderr
    assert wait_until(lambda: not processes_with(sleeper(seconds)), 5), \
        "a background process outlived its exec on the host"
    inside = _exec(cli, sid, "sh", "-c", LIST_PROCESSES)
    assert f"sleep {seconds}" not in inside.stdout, "a background process outlived its exec"
    # Control: the same command detached does keep running, and both checks see it.
    kept = _exec(cli, sid, "sh", "-c", f"setsid sleep {seconds} & sleep 0.3",
                 flags=("--detach",))
    assert kept.returncode == 0, kept.stderr
    assert wait_until(lambda: bool(processes_with(sleeper(seconds))), 10)
    assert f"sleep {seconds}" in _exec(cli, sid, "sh", "-c", LIST_PROCESSES).stdout


def test_a_timeout_kills_the_execs_whole_tree_with_124(backend, cli, sessions):
    sid = sessions(backend)
    seconds = unique_seconds()
    started = time.monotonic()
    ran = _exec(cli, sid, "sh", "-c", f"setsid sleep {seconds} & sleep 60",
                flags=("--timeout", "1"))
    assert ran.returncode == 124, ran.stdout + ran.stderr
    assert time.monotonic() - started < 20
    assert wait_until(lambda: not processes_with(sleeper(seconds)), 5), \
        "the timed-out exec's tree outlived it"
    # The session itself lives on.
    assert _exec(cli, sid, "true").returncode == 0


def test_exit_codes_pass_through_an_exec(backend, cli, sessions, workspace):
    sid = sessions(backend, "--policy-mode", "enforce")
    (workspace / "keep").write_text("x")
    # Enforce: an unverified command runs with --approve, as with `run`.
    assert _exec(cli, sid, "sh", "-c", "exit 7", flags=("--approve",)).returncode == 7
    unapproved = _exec(cli, sid, "sh", "-c", "exit 7")
    assert unapproved.returncode == 126, unapproved.stderr
    missing = _exec(cli, sid, "no-such-command-codex-box", flags=("--approve",))
    assert missing.returncode == 127, missing.stderr
    forbidden = _exec(cli, sid, "rm", "-rf", "/", flags=("--approve",))
    assert forbidden.returncode == 126, forbidden.stderr
    assert (workspace / "keep").exists()
    unknown = cli("exec", "--session", "000000000000", "--", "true")
    assert unknown.returncode == 125, unknown.stderr
    assert "unknown session" in unknown.stderr
    named_unknown = cli("exec", "--session", "no-such-name", "--", "true")
    assert named_unknown.returncode == 125, named_unknown.stderr
    widened = cli("exec", "--session", sid, "--profile", "trusted", "--", "true")
    assert widened.returncode == 2, widened.stderr
    assert "--profile" in widened.stderr
    # No session given and none in the environment: never "the latest".
    nothing = cli("exec", "--", "true")
    assert nothing.returncode == 125, nothing.stderr


def test_a_detached_exec_returns_at_once_and_session_show_lists_it(backend, cli, sessions):
    sid = sessions(backend)
    started = time.monotonic()
    ran = _exec(cli, sid, "sh", "-c", "sleep 3; exit 5", flags=("--detach", "--json"))
    assert ran.returncode == 0, ran.stderr
    assert time.monotonic() - started < 2.5, "--detach waited for the command"
    run_id = json.loads(ran.stderr.strip().splitlines()[-1])["run_id"]

    def detached() -> dict:
        shown = cli("session", "show", sid, "--json")
        assert shown.returncode == 0, shown.stderr
        entries = [d for d in json.loads(shown.stdout)["detached"] if d["exec_id"] == run_id]
        assert len(entries) == 1, shown.stdout
        return entries[0]

    assert detached()["running"] is True
    assert wait_until(lambda: not detached()["running"], 15, step_s=0.5)
    assert detached()["exit_code"] == 5


def test_session_start_with_an_unknown_profile_fails_in_one_line_and_leaves_nothing(
        cli, codex_home, native_available):
    ran = cli("session", "start", "--backend", "native", "--profile", "ofline")
    assert ran.returncode == 125, ran.stdout + ran.stderr
    first = ran.stderr.strip().splitlines()[0]
    assert "ofline" in first, ran.stderr
    assert "Traceback" not in ran.stderr
    assert not list(codex_home.glob("sessions/*")), "a session directory was made"
    records = [json.loads(line) for line in (codex_home / "audit.log").read_text().splitlines()]
    denied = [r for r in records if r["operation"] == "session_start"]
    assert denied and denied[-1]["decision"] == "denied", denied
    assert "ofline" in denied[-1]["reason"]


@pytest.mark.parametrize("flag", ["--idle-timeout", "--max-lifetime"])
@pytest.mark.parametrize("value", ["xyz", "0", "-5m", "", "nan", "inf", "nanm", "1e9d", "366d"])
def test_a_bad_duration_is_a_usage_error(cli, codex_home, flag, value):
    ran = cli("session", "start", "--backend", "native", flag, value)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert not list(codex_home.glob("sessions/*")), "a session directory was made"


def test_show_and_stop_of_an_unknown_session_are_125(cli):
    for verb in ("show", "stop"):
        ran = cli("session", verb, "nope")
        assert ran.returncode == 125, ran.stdout + ran.stderr
        assert "nope" in ran.stderr


def test_the_python_api_runs_execs_and_ends_the_session_after_with(
        native_available, base_env, workspace, codex_home):
    from orchestrator import Session
    from orchestrator.core.errors import CodexBoxError
    from orchestrator.core.spec import RunResult

    out = workspace.parent / "out.txt"
    with open(out, "w") as sink, open(os.devnull) as nothing:
        stdio = (nothing.fileno(), sink.fileno(), sink.fileno())
        with Session.start(profile="workspace", workspace=workspace, backend="native",
                           environ=base_env, cwd=str(workspace)) as session:
            directory = codex_home / "sessions" / session.id
            assert directory.is_dir()
            first = session.exec(["sh", "-c", "echo api > /tmp/x; exit 3"], stdio=stdio)
            assert isinstance(first, RunResult)
            assert first.exit_code == 3 and first.backend == "native"
            second = session.exec(["cat", "/tmp/x"], stdio=stdio)
            assert second.exit_code == 0
            timed = session.exec(["sleep", "30"], timeout=1, stdio=stdio)
            assert timed.exit_code == 124 and timed.timed_out
            attached = Session.attach(session.id, environ=base_env)
            assert attached.exec(["true"], stdio=stdio).exit_code == 0
        assert not directory.exists(), "the session outlived its with block"
    assert out.read_text().strip() == "api"
    with pytest.raises(CodexBoxError) as refused:
        session.exec(["true"])
    assert refused.value.exit_code == 125
