"""Container sessions on the real engines (issue 20): one container per session, each
exec through the engine API under the helper, confined as the run is."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.containers import common as container
from orchestrator.backends.containers import staging
from orchestrator.backends.containers.engine_api import Endpoint
from orchestrator.backends.containers.session import ContainerSession
from orchestrator.backends.docker import DockerBackend
from orchestrator.backends.podman.backend import PodmanBackend
from orchestrator.backends.podman.host import LIBPOD
from orchestrator.compile.spec import Request, compile_spec
from orchestrator.core.profile import Capabilities
from orchestrator.core.session import ExecCall, ExecEnd
from orchestrator.core.spec import SandboxSpec
from orchestrator.profiles.store import ProfileStore

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = {"docker": DockerBackend, "podman": PodmanBackend}
PREFIX = {"docker": "", "podman": LIBPOD}


@pytest.fixture(params=["docker", "podman"])
def engine(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    request.getfixturevalue(f"{name}_available")
    return name


@pytest.fixture
def spec(engine: str, workspace: Path, home: Path, codex_home: Path) -> SandboxSpec:
    environ = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    environ |= {k: v for k, v in os.environ.items() if k in ("DOCKER_HOST", "CONTAINER_HOST")}
    run_id = uuid.uuid4().hex[:12]
    request = Request(argv=("true",), workspace=str(workspace), cwd=str(workspace),
                      environ=environ, home=str(home), codex_home=str(codex_home),
                      uid=os.getuid(), gid=os.getgid(), run_id=run_id, session_id=run_id)
    compiled = compile_spec(ProfileStore(codex_home=codex_home).get("workspace"), request)
    # The keeper gives an empty argv; protected-path placeholders are the runner's job.
    return dataclasses.replace(compiled, argv=(), protected_paths=())


@pytest.fixture
def session(engine: str, spec: SandboxSpec) -> Iterator[ContainerSession]:
    started = BACKENDS[engine]().start_session(spec)
    assert isinstance(started, ContainerSession)
    try:
        yield started
    finally:
        started.stop()


def url(engine: str, spec: SandboxSpec) -> str:
    return spec.docker_host if engine == "docker" else spec.podman_host


def run(session: ContainerSession, tmp_path: Path, *argv: str, stdin: bytes = b"",
        env: tuple[tuple[str, str], ...] | None = None,
        **options: Any) -> tuple[ExecEnd, str, str]:
    """One exec, its stdout and stderr (through files: any size, any thread)."""
    tag = uuid.uuid4().hex[:12]
    paths = [tmp_path / f"{tag}.{name}" for name in ("in", "out", "err")]
    paths[0].write_bytes(stdin)
    fds = [os.open(paths[0], os.O_RDONLY),
           *(os.open(p, os.O_WRONLY | os.O_CREAT, 0o600) for p in paths[1:])]
    try:
        call = ExecCall(exec_id=options.pop("exec_id", tag), argv=argv,
                        env=session.spec.env if env is None else env,
                        cwd=session.spec.workspace, **options)
        end = session.exec(call, (fds[0], fds[1], fds[2]))
    finally:
        for fd in fds:
            os.close(fd)
    return end, paths[1].read_text(), paths[2].read_text()


def processes(engine: str, session: ContainerSession) -> list[str]:
    """The container's processes as the engine lists them (from the host)."""
    top = Endpoint(url(engine, session.spec)).call(
        "GET", f"{PREFIX[engine]}/containers/{session.box}/top")
    return [" ".join(row) for row in top["Processes"]]


def commands(engine: str, session: ContainerSession) -> list[str]:
    """Each process's command line, as the engine lists them (the last column)."""
    top = Endpoint(url(engine, session.spec)).call(
        "GET", f"{PREFIX[engine]}/containers/{session.box}/top")
    return [row[-1] for row in top["Processes"]]


def labelled(engine: str, spec: SandboxSpec) -> list[str]:
    """Every container of this session's run the engine still has, running or not."""
    query = urllib.parse.quote(json.dumps({"label": [f"{container.LABEL_RUN}={spec.run_id}"]}))
    listed = Endpoint(url(engine, spec)).call(
        "GET", f"{PREFIX[engine]}/containers/json?all=1&filters={query}")
    return [str(box["Id"]) for box in listed or []]


def test_a_file_written_to_tmp_in_one_exec_is_read_by_the_next(session, tmp_path):
    assert run(session, tmp_path, "sh", "-c", "echo kept > /tmp/state")[0].exit_code == 0
    end, out, _ = run(session, tmp_path, "cat", "/tmp/state")
    assert (end.exit_code, out) == (0, "kept\n")


def test_stdin_reaches_the_exec_and_its_end_ends_the_commands_input(session, tmp_path):
    end, out, _ = run(session, tmp_path, "cat", stdin=b"line one\nline two\n")
    assert (end.exit_code, out) == (0, "line one\nline two\n")


def test_stdout_and_stderr_reach_their_own_fds(session, tmp_path):
    end, out, err = run(session, tmp_path, "sh", "-c", "echo to-out; echo to-err >&2")
    assert (end.exit_code, out, err) == (0, "to-out\n", "to-err\n")


def test_a_background_process_started_by_an_exec_is_gone_when_it_returns(
        engine, session, tmp_path):
    end, out, _ = run(session, tmp_path, "sh", "-c", "setsid sleep 300 & echo started")
    assert (end.exit_code, out) == (0, "started\n")
    assert not [p for p in processes(engine, session) if "sleep" in p]
    # Positive control: a detached exec's tree lives on, and the engine's list shows it.
    assert run(session, tmp_path, "sleep", "301", detach=True)[0].exit_code == 0
    deadline = time.monotonic() + 10
    while not [p for p in processes(engine, session) if "sleep 301" in p]:
        assert time.monotonic() < deadline, processes(engine, session)
        time.sleep(0.05)
    assert [d["running"] for d in session.detached()] == [True]


def test_a_timeout_ends_the_exec_and_its_whole_tree_with_124(engine, session, tmp_path):
    began = time.monotonic()
    end, _, _ = run(session, tmp_path, "sh", "-c", "setsid sleep 30 & sleep 30", timeout_s=1)
    assert (end.exit_code, end.timed_out) == (124, True)
    assert time.monotonic() - began < 10
    assert not [p for p in processes(engine, session) if "sleep" in p]


def test_exit_codes_pass_through_and_a_missing_command_is_127(session, tmp_path):
    assert run(session, tmp_path, "sh", "-c", "exit 7")[0].exit_code == 7
    end, _, err = run(session, tmp_path, "no-such-command-here")
    assert end.exit_code == 127
    assert "no-such-command-here" in err and "(inside the sandbox)" in err


def test_an_exec_keeps_no_new_privileges_seccomp_and_dropped_capabilities(session, tmp_path):
    end, out, _ = run(session, tmp_path, "cat", "/proc/self/status")
    status = dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)
    assert end.exit_code == 0
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"
    if session.spec.capabilities is Capabilities.NONE:
        assert int(status["CapEff"], 16) == 0


def test_an_exec_runs_as_the_sessions_user_with_only_its_own_environment(session, tmp_path):
    end, out, _ = run(session, tmp_path, "sh", "-c", "id -u; id -g; echo ${CODEX_BOX_PROFILE}")
    assert (end.exit_code, out.split()) == (0, [str(os.getuid()), str(os.getgid()), "workspace"])
    bare = run(session, tmp_path, "env", env=(("PATH", "/usr/bin:/bin"),))[1]
    assert "CODEX_BOX_PROFILE" not in bare  # nothing of the container's own reaches an exec


def test_two_execs_at_once_from_two_threads_each_get_their_own_output(session, tmp_path):
    results: dict[str, tuple[ExecEnd, str, str]] = {}

    def one(word: str) -> None:
        results[word] = run(session, tmp_path, "sh", "-c", f"sleep 1; echo {word}")

    threads = [threading.Thread(target=one, args=(w,)) for w in ("alpha", "beta")]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert {w: (r[0].exit_code, r[1]) for w, r in results.items()} == {
        "alpha": (0, "alpha\n"), "beta": (0, "beta\n")}
    assert time.monotonic() - began < 1.9  # they ran at once, not one after the other


def test_a_signal_reaches_the_command_and_kill_ends_its_tree(session, tmp_path):
    def later(action: Any) -> None:
        threading.Timer(0.5, action).start()

    later(lambda: session.signal("sigint", signal.SIGINT))
    end = session.exec(ExecCall(exec_id="sigint", argv=("sleep", "30"), env=session.spec.env,
                                cwd=session.spec.workspace), (0, 1, 2))
    assert (end.exit_code, end.signal) == (130, signal.SIGINT)
    later(lambda: session.kill("killed"))
    began = time.monotonic()
    end = session.exec(ExecCall(exec_id="killed", argv=("sh", "-c", "trap '' INT TERM; sleep 30"),
                                env=session.spec.env, cwd=session.spec.workspace), (0, 1, 2))
    assert (end.exit_code, end.signal) == (137, signal.SIGKILL)
    assert time.monotonic() - began < 10


def test_stop_removes_the_session_container_and_may_be_called_twice(engine, spec):
    session = BACKENDS[engine]().start_session(spec)
    assert session.alive() and labelled(engine, spec)
    session.stop()
    session.stop()
    assert not session.alive()
    assert labelled(engine, spec) == []
    assert not Path(staging.STAGING_ROOT, spec.run_id).exists()  # staged binds (as root)


KEEPER = r"""
import pickle, sys
sys.path.insert(0, sys.argv[3])
from orchestrator.backends.docker import DockerBackend
from orchestrator.backends.podman.backend import PodmanBackend
spec = pickle.loads(open(sys.argv[2], "rb").read())
backend = DockerBackend() if sys.argv[1] == "docker" else PodmanBackend()
session = backend.start_session(spec)
print(session.box, flush=True)
sys.stdin.read()  # until killed
"""


def test_gc_spares_a_live_session_and_removes_one_whose_keeper_was_killed(engine, spec,
                                                                          tmp_path):
    pickled = tmp_path / "spec.pickle"
    pickled.write_bytes(pickle.dumps(spec))
    keeper = subprocess.Popen([sys.executable, "-c", KEEPER, engine, str(pickled), str(ROOT)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert keeper.stdout is not None
        box = keeper.stdout.readline().strip()
        assert box and labelled(engine, spec) == [box]
        BACKENDS[engine]().gc()
        assert labelled(engine, spec) == [box], "gc removed a live keeper's session"
    finally:
        keeper.send_signal(signal.SIGKILL)
        keeper.wait(30)
    assert labelled(engine, spec) == [box]  # SIGKILL: nothing cleaned up
    BACKENDS[engine]().gc()
    assert labelled(engine, spec) == []
    assert not Path(staging.STAGING_ROOT, spec.run_id).exists()


class Egress:
    """A stand-in for the egress proxy: answers one fixed line on the listener the
    backend made in the session's network namespace."""

    def serve(self, listener: Any) -> None:
        def answer() -> None:
            with listener:
                listener.settimeout(30)
                conn, _ = listener.accept()
                with conn:
                    conn.sendall(b"through-the-proxy\n")

        threading.Thread(target=answer, daemon=True).start()


def test_a_filtered_egress_session_reaches_only_the_proxy_and_stop_removes_its_holder(
        engine, spec, codex_home, tmp_path):
    profile = ProfileStore(codex_home=codex_home).get("net-read-only")
    assert profile.uses_egress_proxy()
    request = Request(argv=("true",), workspace=spec.workspace, cwd=spec.workspace,
                      environ={"PATH": "/usr/bin:/bin"}, home=str(codex_home.parent),
                      codex_home=str(codex_home), uid=os.getuid(), gid=os.getgid(),
                      run_id=spec.run_id, session_id=spec.session_id)
    filtered = dataclasses.replace(compile_spec(profile, request), argv=(), protected_paths=(),
                                   docker_host=spec.docker_host, podman_host=spec.podman_host)
    assert filtered.egress is not None
    session = BACKENDS[engine]().start_session(filtered, egress=Egress())
    try:
        assert len(labelled(engine, filtered)) == 2  # the session and its network holder
        port = filtered.egress.port
        end, out, _ = run(session, tmp_path, "bash", "-c",
                          f"exec 3<>/dev/tcp/127.0.0.1/{port}; cat <&3; ls /sys/class/net")
        assert end.exit_code == 0
        assert out.splitlines() == ["through-the-proxy", "lo"]
    finally:
        session.stop()
    assert labelled(engine, filtered) == []


# -- the red-team's attacks: a command turning on its own supervisor ------------------

def marker() -> str:
    """A sleep argument no other test uses: `sleep 3000.<random>` (fractions are valid)."""
    return f"3000.{uuid.uuid4().int % 10**9:09d}"


def within(seconds: float, predicate: Any) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_command_that_kills_its_supervisor_leaves_nothing_running(engine, session,
                                                                     tmp_path):
    mark, loop = marker(), marker()
    # The red-team's read of a later exec's environment, from a loop left behind.
    spy = (f"setsid sh -c 'while :; do sleep {loop}; done' & "
           f"setsid sh -c 'while :; do cat /proc/[0-9]*/environ 2>/dev/null | tr \"\\0\" \"\\n\""
           " | grep SECRET_TOKEN >> /tmp/leak; done' & ")
    end, _, _ = run(session, tmp_path, "sh", "-c",
                    f"{spy} setsid sleep {mark} & sleep 0.3; kill -9 $PPID; sleep 0.2")
    assert end.exit_code == 137
    # Pid 1 (the helper, no engine init) ends them without waiting for another exec.
    assert within(5, lambda: not [p for p in processes(engine, session)
                                  if mark in p or loop in p or "environ" in p]), \
        processes(engine, session)
    secret = (*session.spec.env, ("SECRET_TOKEN", "hunter2-" + mark))
    assert run(session, tmp_path, "sleep", "0.5", env=secret)[0].exit_code == 0
    end, out, _ = run(session, tmp_path, "sh", "-c", "ps -eo ppid,args; cat /tmp/leak")
    assert mark not in out and loop not in out and "hunter2" not in out, out
    # Positive control: a detached exec's tree lives on through later execs (each of
    # which sweeps pid 1's orphans before its command starts) and pid 1's watch.
    left, main = marker(), marker()
    assert run(session, tmp_path, "sh", "-c", f"setsid sleep {left} & exec sleep {main}",
               detach=True)[0].exit_code == 0
    wanted = {f"sleep {left}", f"sleep {main}"}
    assert within(10, lambda: wanted <= set(commands(engine, session))), commands(engine, session)
    time.sleep(1.5)  # more than pid 1's tick
    out = run(session, tmp_path, "ps", "-eo", "args")[1]
    assert wanted <= set(out.splitlines()), out
    assert wanted <= set(commands(engine, session))


def test_a_command_that_stops_its_supervisor_still_times_out_with_124(engine, session,
                                                                      tmp_path):
    mark = marker()
    began = time.monotonic()
    end, _, _ = run(session, tmp_path, "sh", "-c",
                    f"setsid sleep {mark} & kill -STOP $PPID; sleep {mark}", timeout_s=1)
    assert (end.exit_code, end.timed_out) == (124, True)
    assert time.monotonic() - began < 15
    assert within(5, lambda: not [p for p in processes(engine, session) if mark in p]), \
        processes(engine, session)
    assert not session._running  # nothing of it is left in the keeper either


def test_kill_ends_an_exec_whose_supervisor_was_stopped(engine, session, tmp_path):
    mark = marker()
    threading.Timer(1.0, lambda: session.kill("stopped1")).start()
    began = time.monotonic()
    end, _, _ = run(session, tmp_path, "sh", "-c",
                    f"setsid sleep {mark} & kill -STOP $PPID; sleep {mark}", exec_id="stopped1")
    assert (end.exit_code, end.signal) == (137, signal.SIGKILL)
    assert time.monotonic() - began < 15
    out = run(session, tmp_path, "ps", "-eo", "stat,args")[1]
    assert mark not in out, out


def test_a_detached_execs_end_is_reported_with_its_exit_code(session, tmp_path):
    ended: list[ExecEnd] = []
    done = threading.Event()

    def on_end(end: ExecEnd) -> None:
        ended.append(end)
        done.set()

    call = ExecCall(exec_id="detached1", argv=("sh", "-c", "sleep 0.5; exit 3"),
                    env=session.spec.env, cwd=session.spec.workspace, detach=True)
    assert session.exec(call, (0, 1, 2), on_end=on_end).exit_code == 0
    assert done.wait(15)
    assert [(e.exit_code, e.timed_out) for e in ended] == [(3, False)]
    assert session.detached() == [{"exec_id": "detached1", "argv": ["sh", "-c",
                                   "sleep 0.5; exit 3"], "running": False, "exit_code": 3}]
    # A detached one that times out: 124 reaches on_end too.
    done.clear()
    call = dataclasses.replace(call, exec_id="detached2", argv=("sleep", "30"), timeout_s=1)
    session.exec(call, (0, 1, 2), on_end=on_end)
    assert done.wait(15)
    assert (ended[-1].exit_code, ended[-1].timed_out) == (124, True)


def test_on_end_is_not_called_for_a_detached_exec_the_stop_ended(engine, spec):
    session = BACKENDS[engine]().start_session(spec)
    ended: list[ExecEnd] = []
    call = ExecCall(exec_id="detached3", argv=("sleep", "30"), env=spec.env,
                    cwd=spec.workspace, detach=True)
    try:
        session.exec(call, (0, 1, 2), on_end=ended.append)
        time.sleep(0.5)
    finally:
        session.stop()
    time.sleep(2)  # the follower thread has seen the end by now
    assert ended == []


def test_pid_1_is_the_helper_out_of_the_sessions_reach_and_the_engine_stops_it(
        engine, session, tmp_path):
    _, out, _ = run(session, tmp_path, "sh", "-c",
                      "kill -TERM 1; kill -INT 1; kill -STOP 1; kill -KILL 1; sleep 0.3;"
                      " tr '\\0' ' ' < /proc/1/cmdline; echo;"
                      " head -c1 /proc/1/mem || echo no-mem-1; head -c1 /proc/$PPID/mem || echo"
                      " no-mem-supervisor")
    assert out.splitlines() == ["/.codex-box/supervise --pause ", "no-mem-1",
                                "no-mem-supervisor"], out
    assert session.alive()
    began = time.monotonic()
    wait = "t" if engine == "docker" else "timeout"
    Endpoint(url(engine, session.spec)).call(
        "POST", f"{PREFIX[engine]}/containers/{session.box}/stop?{wait}=20", timeout=30)
    assert time.monotonic() - began < 5  # SIGTERM from the engine ends it, not the kill
    assert not session.alive()
