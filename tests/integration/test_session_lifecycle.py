"""Sessions end cleanly (issue 20): a normal stop leaves nothing without ``gc``; a
SIGKILLed keeper leaves nothing after ``gc``; a killed sandbox root is noticed by its
keeper; idle timeout and max lifetime; audit records carry the session id and the log
verifies after many concurrent execs; only the session's user, from outside every
sandbox, can use it. Everything is checked on the host."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import CODEX_BOX
from tests.procs import processes_with

from .session_helpers import (
    ENGINE_CLI,
    Footprint,
    alive,
    children,
    session_starter,
    sleeper,
    state_of,
    unique_seconds,
    wait_until,
)
from .session_helpers import (
    audit_records as _records,
)
from .session_helpers import (
    exec_in as _exec,
)


@pytest.fixture
def sessions(cli, codex_home):
    yield from session_starter(cli, codex_home)


def _busy_session(backend, cli, sessions, codex_home, workspace) -> tuple[Footprint, int]:
    before = {p.name for p in workspace.iterdir()}
    sid = sessions(backend)
    seconds = unique_seconds()
    ran = _exec(cli, sid, "sh", "-c", f"setsid sleep {seconds} & sleep {seconds}",
                flags=("--detach",))
    assert ran.returncode == 0, ran.stderr
    assert wait_until(lambda: bool(processes_with(sleeper(seconds))), 10)
    footprint = Footprint(backend, codex_home, sid, workspace, before)
    assert footprint.placeholders, "control: the session holds placeholders in its workspace"
    return footprint, seconds


def test_a_stopped_session_leaves_nothing_without_gc(backend, cli, sessions, codex_home,
                                                      workspace):
    footprint, seconds = _busy_session(backend, cli, sessions, codex_home, workspace)
    stopped = cli("session", "stop", footprint.session_id)
    assert stopped.returncode == 0, stopped.stderr
    assert wait_until(lambda: not footprint.leftovers(sleeper(seconds)), 10), \
        footprint.leftovers(sleeper(seconds))
    stops = [r for r in _records(codex_home) if r["operation"] == "session_stop"]
    assert stops and stops[-1]["session_id"] == footprint.session_id
    assert "stopped by its user" in stops[-1]["reason"]


def test_a_sigkilled_keeper_leaves_nothing_after_gc(backend, cli, sessions, codex_home,
                                                    workspace):
    footprint, seconds = _busy_session(backend, cli, sessions, codex_home, workspace)
    os.kill(footprint.keeper_pid, signal.SIGKILL)
    assert wait_until(lambda: not alive(footprint.keeper_pid), 5)

    def listed_dead() -> bool:
        listed = json.loads(cli("session", "ls", "--json").stdout)
        entry = [s for s in listed if s["id"] == footprint.session_id]
        assert entry, listed  # on record until gc
        return entry[0]["live"] is False

    assert wait_until(listed_dead, 10, step_s=0.5)
    dead = _exec(cli, footprint.session_id, "true")
    assert dead.returncode == 125, dead.stderr
    gc = cli("gc", timeout=120)
    assert gc.returncode == 0, gc.stderr
    assert wait_until(lambda: not footprint.leftovers(sleeper(seconds)), 10), \
        footprint.leftovers(sleeper(seconds))


def _kill_root(footprint: Footprint) -> None:
    if footprint.backend == "native":
        # The keeper's child is the launcher; its child is the sandbox's pid 1.
        roots = [pid for launcher in children(footprint.keeper_pid)
                 for pid in children(launcher)]
        assert len(roots) == 1, roots
        os.kill(roots[0], signal.SIGKILL)
    else:
        subprocess.run([*ENGINE_CLI[footprint.backend], "kill", footprint.containers[0]],
                       capture_output=True, timeout=60, check=True)


def test_a_killed_sandbox_root_ends_its_session_leaving_nothing_without_gc(
        backend, cli, sessions, codex_home, workspace):
    footprint, seconds = _busy_session(backend, cli, sessions, codex_home, workspace)
    _kill_root(footprint)
    assert wait_until(lambda: not alive(footprint.keeper_pid), 10), \
        "the keeper did not notice its sandbox died"
    assert wait_until(lambda: not footprint.leftovers(sleeper(seconds)), 10), \
        footprint.leftovers(sleeper(seconds))
    stops = [r for r in _records(codex_home) if r["operation"] == "session_stop"]
    assert stops and "sandbox died" in stops[-1]["reason"], stops


def test_an_idle_session_ends_itself(cli, sessions, codex_home, native_available):
    sid = sessions("native", "--idle-timeout", "2s")
    assert _exec(cli, sid, "true").returncode == 0
    last = time.monotonic()
    directory = codex_home / "sessions" / sid
    assert wait_until(lambda: not directory.exists(), 8)
    assert time.monotonic() - last >= 1.5, "it ended before it was idle for 2s"
    listed = cli("session", "ls", "--json")
    assert sid not in listed.stdout
    stops = [r for r in _records(codex_home) if r["operation"] == "session_stop"]
    assert stops and stops[-1]["session_id"] == sid and "idle" in stops[-1]["reason"], stops


def test_a_running_exec_keeps_a_session_from_idling(cli, sessions, codex_home,
                                                    native_available):
    sid = sessions("native", "--idle-timeout", "1s")
    ran = _exec(cli, sid, "sh", "-c", "sleep 3; echo still-here")
    assert ran.returncode == 0 and "still-here" in ran.stdout, ran.stderr
    assert _exec(cli, sid, "true").returncode == 0


def test_max_lifetime_ends_a_session_even_while_a_detached_exec_runs(
        backend, cli, sessions, codex_home, workspace):
    before = {p.name for p in workspace.iterdir()}
    sid = sessions(backend, "--max-lifetime", "3s")
    seconds = unique_seconds()
    started = time.monotonic()
    assert _exec(cli, sid, "sleep", str(seconds), flags=("--detach",)).returncode == 0
    footprint = Footprint(backend, codex_home, sid, workspace, before)
    assert wait_until(lambda: not (codex_home / "sessions" / sid).exists(), 15)
    assert time.monotonic() - started < 12
    assert wait_until(lambda: not footprint.leftovers(sleeper(seconds)), 10), \
        footprint.leftovers(sleeper(seconds))
    stops = [r for r in _records(codex_home) if r["operation"] == "session_stop"]
    assert stops and "max lifetime" in stops[-1]["reason"], stops


def test_each_execs_records_carry_the_session_id(backend, cli, sessions, codex_home):
    sid = sessions(backend, "--name", f"audited-{backend}")
    ran = _exec(cli, f"audited-{backend}", "sh", "-c", "exit 4", flags=("--json",))
    assert ran.returncode == 4
    run_id = json.loads(ran.stderr.strip().splitlines()[-1])["run_id"]
    refused = _exec(cli, sid, "no-such-command-codex-box")
    assert refused.returncode == 127
    stopped = cli("session", "stop", sid)
    assert stopped.returncode == 0, stopped.stderr
    records = [r for r in _records(codex_home) if r.get("session_id") == sid]
    ops = [r["operation"] for r in records]
    assert ops.count("session_start") == 1 and ops.count("session_stop") == 1, ops
    this = [r for r in records if r.get("run_id") == run_id and r["operation"] == "command_exec"]
    phases = {r["phase"]: r for r in this}
    assert set(phases) == {"decided", "ended"}, this
    assert phases["ended"]["exit_code"] == 4
    assert sum(r["operation"] == "command_exec" and r.get("phase") == "ended"
               for r in records) == 2
    # No exec record without the session's id.
    stray = [r for r in _records(codex_home)
             if r["operation"] == "command_exec" and r.get("session_id") != sid]
    assert not stray, stray
    verified = cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_detached_execs_end_is_audited_too(cli, sessions, codex_home, native_available):
    sid = sessions("native")
    ran = _exec(cli, sid, "sh", "-c", "sleep 1; exit 6", flags=("--detach", "--json"))
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stderr.strip().splitlines()[-1])["run_id"]

    def ended() -> list[dict]:
        return [r for r in _records(codex_home) if r.get("run_id") == run_id
                and r["operation"] == "command_exec" and r.get("phase") == "ended"]

    assert wait_until(lambda: bool(ended()), 10, step_s=0.5), \
        "a detached exec's outcome never reached the audit log"
    assert ended()[0]["exit_code"] == 6
    assert ended()[0]["session_id"] == sid


def test_the_audit_log_verifies_after_8_sessions_of_25_execs_at_once(
        cli, sessions, codex_home, native_available):
    ids = [sessions("native") for _ in range(8)]

    def drive(sid: str) -> list[int]:
        codes = []
        deadline = time.monotonic() + 240
        for n in range(25):
            if time.monotonic() > deadline:
                break
            codes.append(_exec(cli, sid, "sh", "-c", f"exit {n % 3}").returncode)
        return codes

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(drive, ids, timeout=300))
    for codes in results:
        assert codes == [n % 3 for n in range(25)], codes
    for sid in ids:
        assert cli("session", "stop", sid).returncode == 0
    records = _records(codex_home)
    for sid in ids:
        ended = [r for r in records if r.get("session_id") == sid
                 and r["operation"] == "command_exec" and r.get("phase") == "ended"]
        assert len(ended) == 25, (sid, len(ended))
    assert [r["seq"] for r in records] == sorted(r["seq"] for r in records)
    verified = cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_client_of_another_uid_cannot_exec_into_a_session(cli, sessions, base_env,
                                                            workspace, native_available):
    if os.geteuid() != 0:
        pytest.skip("switching to another uid needs root (CI runs as root)")
    sid = sessions("native")
    marker = workspace / "ran-as-nobody"
    # CODEX_BOX itself must be reachable by uid 65534: run it through this python.
    argv = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
            CODEX_BOX, "exec", "--session", sid, "--", "touch", str(marker)]
    ran = subprocess.run(argv, env=base_env, cwd="/", capture_output=True, text=True,
                         timeout=60)
    assert ran.returncode == 125, ran.stdout + ran.stderr
    assert not marker.exists()
    # Control: the session's own user can.
    assert _exec(cli, sid, "touch", str(marker)).returncode == 0
    assert marker.exists()


# Past the directory's permissions (the test widens them): the keeper's own check of
# the peer's uid must refuse. The O_PATH descriptor is opened as root, then the uid is
# dropped (and the process made dumpable again, so /proc/self/fd stays ours).
OTHER_UID = r"""
import ctypes, json, os, socket, struct, sys
fd = os.open(sys.argv[1], os.O_PATH | os.O_DIRECTORY)
if sys.argv[2] != "same":
    os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
    ctypes.CDLL(None, use_errno=True).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(f"/proc/self/fd/{fd}/control.sock")
data = json.dumps({"op": "info"}).encode()
try:
    s.sendall(struct.pack(">I", len(data)) + data)
except BrokenPipeError:
    pass  # the keeper refuses a stranger without reading; its answer is still queued
got = b""
while len(got) < 4 or len(got) < 4 + struct.unpack(">I", got[:4])[0]:
    try:
        chunk = s.recv(65536)
    except ConnectionResetError:
        break
    if not chunk:
        break
    got += chunk
print("ANSWER", os.getuid(), got[4:].decode(errors="replace"))
"""


def test_the_keeper_refuses_a_peer_of_another_uid_even_past_the_permissions(
        cli, sessions, codex_home, native_available):
    if os.geteuid() != 0:
        pytest.skip("switching to another uid needs root (CI runs as root)")
    sid = sessions("native")
    directory = codex_home / "sessions" / sid
    os.chmod(directory, 0o711)  # noqa: S103 -- the attack needs a way in
    os.chmod(directory / "control.sock", 0o666)  # noqa: S103 -- likewise
    same = subprocess.run([sys.executable, "-I", "-c", OTHER_UID, str(directory), "same"],
                          capture_output=True, text=True, timeout=30)
    assert '"event":"info"' in same.stdout, "control: " + same.stdout + same.stderr
    other = subprocess.run([sys.executable, "-I", "-c", OTHER_UID, str(directory), "other"],
                           capture_output=True, text=True, timeout=30)
    assert "ANSWER 65534" in other.stdout, "the attack did not connect: " + other.stderr
    assert '"event":"info"' not in other.stdout, other.stdout
    assert "uid 65534 may not use" in other.stdout, other.stdout


def test_a_client_in_another_pid_namespace_is_refused(cli, sessions, base_env, workspace,
                                                      native_available):
    if os.geteuid() != 0:
        pytest.skip("unshare --pid needs root here (CI runs as root)")
    sid = sessions("native")
    marker = workspace / "ran-from-another-pid-namespace"
    command = [CODEX_BOX, "exec", "--session", sid, "--", "touch", str(marker)]
    # With the host's /proc (the keeper is visible, so the client goes ahead and
    # connects): the keeper itself refuses the peer.
    ran = subprocess.run(["unshare", "--pid", "--fork", *command],
                         env=base_env, cwd=workspace, capture_output=True, text=True,
                         timeout=60)
    assert ran.returncode == 125, ran.stdout + ran.stderr
    assert "inside a sandbox may not use" in ran.stderr, ran.stderr
    # With its own /proc the client cannot even see the keeper.
    hidden = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", *command],
                            env=base_env, cwd=workspace, capture_output=True, text=True,
                            timeout=60)
    assert hidden.returncode == 125, hidden.stdout + hidden.stderr
    assert not marker.exists()
    control = subprocess.run(command, env=base_env, cwd=workspace, capture_output=True,
                             text=True, timeout=60)
    assert control.returncode == 0, control.stderr
    assert marker.exists()


def test_a_session_directory_and_socket_are_the_users_alone(sessions, codex_home,
                                                            native_available):
    sid = sessions("native")
    directory = codex_home / "sessions" / sid
    assert directory.stat().st_mode & 0o777 == 0o700
    assert (codex_home / "sessions").stat().st_mode & 0o777 == 0o700
    assert (directory / "state.json").stat().st_mode & 0o777 == 0o600
    assert (directory / "control.sock").stat().st_mode & 0o777 == 0o600
    assert state_of(codex_home, sid)["uid"] == os.getuid()
