"""Finding a session again: by id or name, never "the latest"; a dead keeper (or a
recycled pid) is not a session; gc removes exactly the dead ones. Also the keeper's
peer check and the pieces of its start request."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.core.errors import UsageError
from orchestrator.core.options import LaunchOptions
from orchestrator.core.session import check_name
from orchestrator.runner.sessions import store
from orchestrator.runner.sessions.control import refused_peer
from orchestrator.runner.sessions.request import StartRequest
from orchestrator.sandbox.linux.proctree import start_time


def state(session_id: str, *, name: str | None = None, pid: int | None = None,
          created: str = "2026-12-07T10:00:00+00:00") -> store.SessionState:
    pid = os.getpid() if pid is None else pid
    return store.SessionState(
        id=session_id, name=name, profile="workspace", backend="native", workspace="/w",
        created=created, expires="2026-12-07T18:00:00+00:00", idle_timeout_s=1800.0,
        max_lifetime_s=28800.0, keeper_pid=pid, keeper_start=start_time(pid) or "gone",
        uid=os.getuid(),
    )


def record(home: Path, one: store.SessionState) -> None:
    store.make_directory(home, one.id)
    store.write_state(home, one)


@pytest.fixture
def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_session_is_found_by_id_and_by_name(tmp_path: Path) -> None:
    record(tmp_path, state("aaaaaaaaaaaa", name="ci-42"))
    assert store.find(tmp_path, "aaaaaaaaaaaa").name == "ci-42"
    assert store.find(tmp_path, "ci-42").id == "aaaaaaaaaaaa"


def test_the_sessions_directory_and_state_are_private(tmp_path: Path) -> None:
    record(tmp_path, state("aaaaaaaaaaaa"))
    assert store.root(tmp_path).stat().st_mode & 0o777 == 0o700
    assert store.directory(tmp_path, "aaaaaaaaaaaa").stat().st_mode & 0o777 == 0o700
    path = store.directory(tmp_path, "aaaaaaaaaaaa") / store.STATE
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("ref", [None, "", "nope", "bbbbbbbbbbbb", "../aaaaaaaaaaaa"])
def test_no_session_given_or_an_unknown_one_is_an_error_never_the_latest(
    tmp_path: Path, ref: str | None
) -> None:
    record(tmp_path, state("aaaaaaaaaaaa", name="only"))
    with pytest.raises(store.UnknownSession) as raised:
        store.find(tmp_path, ref)
    assert raised.value.exit_code == 125


def test_a_session_whose_keeper_died_is_not_found_and_gc_removes_it(
    tmp_path: Path, dead_pid: int
) -> None:
    record(tmp_path, state("aaaaaaaaaaaa", name="gone", pid=dead_pid))
    record(tmp_path, state("cccccccccccc", name="live"))
    with pytest.raises(store.UnknownSession, match="has ended"):
        store.find(tmp_path, "aaaaaaaaaaaa")
    with pytest.raises(store.UnknownSession, match="unknown session"):
        store.find(tmp_path, "gone")  # by name: only live sessions answer
    removed = store.sweep_dead(tmp_path)
    assert removed == ["session aaaaaaaaaaaa (workspace, keeper gone)"]
    assert not store.directory(tmp_path, "aaaaaaaaaaaa").exists()
    assert store.find(tmp_path, "live").id == "cccccccccccc"


def test_a_recycled_pid_is_not_the_keeper(tmp_path: Path) -> None:
    record(tmp_path, replace(state("aaaaaaaaaaaa"), keeper_start="1"))  # our pid, not our start
    assert [live for _, live in store.all_sessions(tmp_path)] == [False]


def test_gc_spares_a_directory_being_made_and_removes_an_old_one_with_no_state(
    tmp_path: Path,
) -> None:
    young = store.make_directory(tmp_path, "dddddddddddd")
    old = store.make_directory(tmp_path, "eeeeeeeeeeee")
    os.utime(old, (0, 0))
    removed = store.sweep_dead(tmp_path)
    assert removed == ["session eeeeeeeeeeee (no state)"]
    assert young.exists() and not old.exists()


@pytest.mark.parametrize("name", ["ci-42", "a", "Build.7_x"])
def test_a_good_name_is_accepted(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", "a/b", "..", "abcdef123456", "x" * 64, "é"])
def test_a_name_that_could_mislead_is_refused(name: str) -> None:
    with pytest.raises(UsageError):
        check_name(name)


def test_the_start_request_survives_its_trip_to_the_keeper() -> None:
    request = StartRequest(
        environ={"A": "1"}, cwd="/w", profile="offline", name="n",
        options=LaunchOptions(env_names=("X",), memory="1g", image="img"),
        idle_timeout_s=5.0,
    )
    import json

    assert StartRequest.from_json(json.loads(json.dumps(request.to_json()))) == request


def test_a_peer_of_this_user_outside_any_sandbox_is_accepted() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        assert refused_peer(a) is None


def test_a_peer_in_another_pid_namespace_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/unshare"):
        pytest.skip("needs root and unshare(1) to make a pid namespace")
    path = tmp_path / "s"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    code = (
        "import socket,time;s=socket.socket(socket.AF_UNIX);"
        f"s.connect({str(path)!r});time.sleep(2)"
    )
    child = subprocess.Popen(["unshare", "--pid", "--fork", sys.executable, "-c", code])
    try:
        listener.settimeout(10)
        conn, _ = listener.accept()
        with conn:
            assert refused_peer(conn) == (
                "a process inside a sandbox may not use a session's control socket"
            )
    finally:
        child.kill()
        child.wait()
        listener.close()
