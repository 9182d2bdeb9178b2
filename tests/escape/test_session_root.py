"""Attacks on a native session's pid 1 (``sandbox.linux.session_root``) from its own
execs: signals sent to pid 1, and a pids limit held by another exec. Pid 1 serves every
exec of the session; if an exec could end it, every other exec would end with it. Each
attack is followed by an exec that must still find the session's /tmp as it was.
Also: what pid 1 does to its own signals must not reach the commands (Ctrl-C still
works, and an exec starts with the dispositions of a one-shot run).
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CODEX_BOX, SANDBOX_PYTHON
from tests.integration.session_helpers import session_starter, wait_until

# sh's builtin kill; each one's own status is ignored (``;``), the line must go on.
ATTACK = (
    "kill -0 1 && echo CAN-SIGNAL-1; kill -INT 1; kill -TERM 1; kill -HUP 1; "
    "kill -QUIT 1; kill -USR1 1; kill -USR2 1; kill -PIPE 1; kill -ALRM 1; "
    "sleep 0.3; echo ATTACKED"
)
# Signals 32 and 33 are the C library's own: no one resets them (Python cannot), so
# they are whatever the test's process had (an xdist worker ignores 32).
LIBC_RESERVED = (1 << 31) | (1 << 32)


def _ignored(status: dict[str, str]) -> int:
    """The ignored signals a status shows, but the C library's own."""
    return int(status["SigIgn"].strip(), 16) & ~LIBC_RESERVED

# Forks sleepers until the pids limit refuses one, says so (a file in the workspace),
# and holds them: the session is at its limit until the exec's --timeout ends its tree.
HOG = r"""
import os, time
for _ in range(200):
    try:
        if os.fork() == 0:
            time.sleep(300)
            os._exit(0)
    except OSError:
        break
open("pids-full", "w").close()
time.sleep(300)
"""


@pytest.fixture
def sessions(cli, codex_home, native_available) -> Iterator:
    yield from session_starter(cli, codex_home)


def _exec(cli, sid: str, *argv: str, flags: tuple[str, ...] = (), timeout: float = 60):
    return cli("exec", "--session", sid, *flags, "--", *argv, timeout=timeout)


def _live(cli, sid: str) -> bool:
    listed = cli("session", "ls", "--json", timeout=60)
    assert listed.returncode == 0, listed.stderr
    return any(s["id"] == sid and s["live"] for s in json.loads(listed.stdout))


def _status(text: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def test_signals_sent_to_pid_1_do_not_end_the_session(cli, sessions):
    sid = sessions("native")
    token = uuid.uuid4().hex
    wrote = _exec(cli, sid, "sh", "-c", f"echo {token} > /tmp/before-attack")
    assert wrote.returncode == 0, wrote.stderr
    control = _exec(cli, sid, "cat", "/tmp/before-attack")
    assert control.stdout.strip() == token, "control: " + control.stdout + control.stderr
    attack = _exec(cli, sid, "sh", "-c", ATTACK)
    # Control: the exec may signal pid 1 (same uid): what saves it is what it does then.
    assert "CAN-SIGNAL-1" in attack.stdout, attack.stdout + attack.stderr
    assert "ATTACKED" in attack.stdout, attack.stdout + attack.stderr
    after = _exec(cli, sid, "cat", "/tmp/before-attack")
    assert (after.returncode, after.stdout.strip()) == (0, token), (
        "the session did not survive signals to its pid 1: " + after.stdout + after.stderr
    )
    assert _live(cli, sid)


class ApiSession:
    """A native session started through the backend itself (no keeper): how the
    launcher starts can be chosen, and a thousand execs cost seconds, not minutes."""

    def __init__(
        self,
        workspace: Path,
        home: Path,
        codex_home: Path,
        out: Path,
        *,
        second_thread: bool = False,
    ) -> None:
        from orchestrator.backends.native import forking
        from orchestrator.backends.native.backend import LinuxBackend
        from orchestrator.compile.spec import Request, compile_spec
        from orchestrator.profiles.store import ProfileStore

        run_id = uuid.uuid4().hex[:12]
        request = Request(
            argv=("true",),
            workspace=str(workspace),
            cwd=str(workspace),
            environ={"PATH": "/usr/local/bin:/usr/bin:/bin"},
            home=str(home),
            codex_home=str(codex_home),
            uid=os.getuid(),
            gid=os.getgid(),
            run_id=run_id,
            session_id=run_id,
        )
        compiled = compile_spec(ProfileStore(codex_home=codex_home).get("workspace"), request)
        # As the keeper gives it: no argv; protected-path placeholders are the runner's.
        self.spec = dataclasses.replace(compiled, argv=(), protected_paths=())
        self.out = out
        # With a second thread here the launcher is a fresh `python -I`, not a fork.
        hold = threading.Event()
        other = threading.Thread(target=hold.wait, daemon=True)
        if second_thread:
            other.start()
        try:
            # (Under pytest-xdist the worker has threads of its own: never a fork there.)
            if second_thread:
                assert not forking.safe(), "control: the launcher is a fresh python -I"
            self.session = LinuxBackend().start_session(self.spec)
        finally:
            hold.set()
            if second_thread:
                other.join()

    def run(self, *argv: str, detach: bool = False) -> tuple[int, str]:
        from orchestrator.core.session import ExecCall

        out = self.out / f"{uuid.uuid4().hex}.out"
        with open(out, "w") as sink, open(os.devnull) as nothing:
            call = ExecCall(
                exec_id=uuid.uuid4().hex[:12],
                argv=argv,
                env=self.spec.env,
                cwd=self.spec.workspace,
                timeout_s=30,
                detach=detach,
            )
            end = self.session.exec(call, (nothing.fileno(), sink.fileno(), sink.fileno()))
        return end.exit_code, out.read_text()


def test_signals_reach_no_python_handler_when_the_launcher_is_python_minus_i(
    native_available, workspace, home, codex_home, tmp_path
):
    """The path of the report: with a second thread in the caller, the launcher is a
    fresh ``python -I`` (not a fork), whose SIGINT handler pid 1 inherited:
    ``kill -INT 1`` raised KeyboardInterrupt in pid 1 and ended the session."""
    api = ApiSession(workspace, home, codex_home, tmp_path, second_thread=True)
    try:
        token = uuid.uuid4().hex
        assert api.run("sh", "-c", f"echo {token} > /tmp/before-attack") == (0, "")
        assert api.run("cat", "/tmp/before-attack") == (0, token + "\n"), "control"
        # Pid 1 catches SIGCHLD alone (its loop's wakeup); everything else is ignored.
        code, pid1 = api.run("cat", "/proc/1/status")
        assert code == 0, pid1
        assert _status(pid1)["SigCgt"].strip() == f"{1 << (signal.SIGCHLD - 1):016x}", pid1
        code, out = api.run("sh", "-c", ATTACK)
        assert "CAN-SIGNAL-1" in out and "ATTACKED" in out, out
        assert api.run("cat", "/tmp/before-attack") == (0, token + "\n"), "pid 1 died"
        assert api.session.alive()
        code, own = api.run("cat", "/proc/self/status")
        assert _ignored(_status(own)) == 0, own
    finally:
        api.session.stop()


def test_pid_1_serves_execs_past_descriptor_1023(
    native_available, workspace, home, codex_home, tmp_path
):
    """Pid 1 holds one pipe per running exec: past about a thousand detached ones its
    descriptors pass FD_SETSIZE (1024), where select() fails and pid 1 ended."""
    many = 1100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < many + 100:
        pytest.skip("the descriptor limit here is below what the test needs")
    # A normal user's login (runuser, pam_limits) starts with a soft limit of 1024 under
    # a higher hard one: raise it, as any process may, for the session started here.
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, many + 100), hard))
    api = ApiSession(workspace, home, codex_home, tmp_path)
    try:
        for _ in range(many):
            assert api.run("sleep", "60", detach=True)[0] == 0
        code, out = api.run("sh", "-c",
                            "ls /proc/1/fd 2>/dev/null | sort -n | tail -n 1; echo still-here")
        words = out.split()
        assert (code, words[-1:]) == (0, ["still-here"]), out
        if os.geteuid() == 0:
            assert int(words[0]) > 1023, f"control: pid 1's highest descriptor is {words[0]}"
        # (As a normal user the sandbox cannot list pid 1's descriptors: pid 1 is not
        # dumpable, so its /proc entries are the host root's. The control is then the
        # 1100 detached execs it serves, each holding a pipe in pid 1.)
        assert api.session.alive()
    finally:
        api.session.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_ctrl_c_still_reaches_the_command_and_it_starts_with_default_dispositions(
    cli, sessions, base_env, workspace
):
    sid = sessions("native")
    # A non-interactive sh cannot trap a signal that was ignored when it started: the
    # trap running shows SIGINT came to the command at its default disposition.
    script = 'trap "echo GOT-INT; exit 3" INT; touch trap-set; sleep 30 & wait'
    # The CLI passes Ctrl-C on from its KeyboardInterrupt: give it Python's own SIGINT
    # handling even if this test runs with SIGINT ignored (a background job).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [CODEX_BOX, "exec", "--session", sid, "--", "sh", "-c", script],
            cwd=workspace,
            env=base_env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        assert wait_until(lambda: (workspace / "trap-set").exists(), 30), "the exec never ran"
        proc.send_signal(signal.SIGINT)  # Ctrl-C at the client
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (proc.returncode, out.strip()) == (3, "GOT-INT"), out + err

    inside = _exec(cli, sid, "grep", "^Sig[IB]", "/proc/self/status")
    one_shot = cli(
        "run",
        "--backend",
        "native",
        "--profile",
        "workspace",
        "--",
        "grep",
        "^Sig[IB]",
        "/proc/self/status",
    )
    assert one_shot.returncode == 0, one_shot.stderr
    assert _ignored(_status(one_shot.stdout)) == 0, (
        "control: " + one_shot.stdout
    )
    assert inside.returncode == 0, inside.stderr
    assert _status(inside.stdout) == _status(one_shot.stdout), inside.stdout
    # SIGPIPE at its default, as with `run`: `yes` is killed by it (141), as in a shell.
    piped = _exec(
        cli,
        sid,
        "sh",
        "-c",
        '{ yes; echo "yes-status=$?" > /tmp/st; } | head -c 1 >/dev/null; cat /tmp/st',
        timeout=30,
    )
    assert piped.stdout.strip() == "yes-status=141", piped.stdout + piped.stderr


def test_an_exec_that_cannot_fork_ends_with_125_and_the_session_lives_on(cli, sessions, workspace):
    sid = sessions("native", "--pids", "40")
    # Its --timeout ends the hog's whole tree: the limit frees itself later.
    hog = _exec(cli, sid, SANDBOX_PYTHON, "-I", "-c", HOG, flags=("--detach", "--timeout", "20"))
    assert hog.returncode == 0, hog.stderr
    assert wait_until(lambda: (workspace / "pids-full").exists(), 15), (
        "control: the hog never reached the pids limit"
    )
    started = time.monotonic()
    refused = _exec(cli, sid, "true", flags=("--json",), timeout=30)
    assert refused.returncode == 125, refused.stdout + refused.stderr
    assert time.monotonic() - started < 15
    result = json.loads(refused.stderr.strip().splitlines()[-1])
    assert "could not start the command" in result["detail"], result
    assert "Traceback" not in refused.stderr
    assert _live(cli, sid), "a fork failure in pid 1 ended the session"
    # Once the hog's tree is gone, the same session runs commands again.
    assert wait_until(
        lambda: _exec(cli, sid, "true", timeout=30).returncode == 0, 40, step_s=1.0
    ), "the session never recovered"
