"""What every CI driver does with a job's sessions (orchestrator.ci.jobs), and the GitLab
driver's pure session helpers (orchestrator.ci.gitlab.sessions): with the keeper's
client faked, no session or sandbox is started."""

from __future__ import annotations

import os
import signal
import socket
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.ci import jobs
from orchestrator.ci.gitlab import job, sessions
from orchestrator.ci.gitlab.protocol import ProtocolError
from orchestrator.core.errors import CodexBoxError, Refused
from orchestrator.profiles.store import ProfileStore
from orchestrator.runner.sessions import client
from orchestrator.runner.sessions import store as session_store

# --- clean_environ ------------------------------------------------------------------


def test_a_session_gets_the_host_s_basics_and_none_of_the_runner_s_variables() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/home/r",
        "LANG": "C.UTF-8",
        "DOCKER_HOST": "unix:///run/docker.sock",
        "CODEX_HOME": "/home/r/.codex",
        "CODEX_BOX_BACKEND": "native",
        "JOB_RESPONSE_FILE": "/tmp/custom-executor1/response.json",
        "CUSTOM_ENV_CI_JOB_TOKEN": "glcbt-64_secret",
        "CUSTOM_ENV_DEPLOY_KEY": "masked",
        "BUILD_FAILURE_EXIT_CODE": "1",
        "CI_JOB_TOKEN": "glcbt-64_secret",
        "LD_PRELOAD": "/x.so",
        "CODEX_BOX_GITLAB_ROOT": "/b/0/p",
    }
    assert jobs.clean_environ(environ) == {
        "PATH": "/usr/bin",
        "HOME": "/home/r",
        "LANG": "C.UTF-8",
        "DOCKER_HOST": "unix:///run/docker.sock",
        "CODEX_HOME": "/home/r/.codex",
        "CODEX_BOX_BACKEND": "native",
    }


def test_clean_environ_of_nothing_is_nothing() -> None:
    assert jobs.clean_environ({}) == {}


# --- terminable ---------------------------------------------------------------------


def test_sigterm_within_terminable_raises_terminated_once() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(jobs.Terminated), jobs.terminable():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a point where the handler runs
        pytest.fail("SIGTERM did not interrupt")
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_second_sigterm_during_the_cleanup_is_ignored() -> None:
    cleaned = False
    with pytest.raises(jobs.Terminated), jobs.terminable():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            signal.pthread_sigmask(signal.SIG_BLOCK, [])
        finally:
            assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)  # ignored: the cleanup goes on
            cleaned = True
    assert cleaned


def test_terminated_is_not_an_exception_a_broad_except_would_swallow() -> None:
    assert issubclass(jobs.Terminated, BaseException)
    assert not issubclass(jobs.Terminated, Exception)


def test_terminable_restores_the_previous_handler_without_a_signal() -> None:
    def mine(_signum: int, _frame: object) -> None:
        raise AssertionError("not expected")

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        with jobs.terminable():
            assert signal.getsignal(signal.SIGTERM) is not mine
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- stdin_of -------------------------------------------------------------------------


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("text", ["", "echo hi\n", "caf\u00e9 \u20ac\n", "x" * (3 << 20)])
def test_stdin_of_reads_the_text_from_its_start(text: str) -> None:
    fd = jobs.stdin_of(text)
    try:
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0
        assert _read_all(fd) == text.encode()
        assert os.fstat(fd).st_nlink == 0  # in no directory
    finally:
        os.close(fd)


def test_stdin_of_gives_back_a_script_s_bytes_that_are_not_utf8() -> None:
    # driver._read_script decodes the stage script with surrogateescape, so a script
    # holding any byte that is not UTF-8 arrives here with surrogates.
    # Encoding strictly would raise UnicodeEncodeError (a traceback, neither of the
    # runner's exit codes) instead of giving the script's own bytes.
    raw = b"echo \xff\xfe caf\xe9\n"
    fd = jobs.stdin_of(raw.decode("utf-8", "surrogateescape"))
    try:
        assert _read_all(fd) == raw
    finally:
        os.close(fd)


# --- step ----------------------------------------------------------------------------


class FakeSock:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def shutdown(self, how: int) -> None:
        self.calls.append(("shutdown", how))

    def settimeout(self, seconds: float) -> None:
        self.calls.append(("settimeout", seconds))

    def close(self) -> None:
        self.calls.append("close")


def test_step_sends_one_exec_and_returns_the_keeper_s_result(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sock = FakeSock()
    sent: dict[str, Any] = {}

    def begin(home: Path, session_id: str, message: dict[str, Any], *, stdio: Any) -> FakeSock:
        sent.update(home=home, session_id=session_id, message=message, stdio=stdio)
        return sock

    monkeypatch.setattr(client, "begin", begin)
    monkeypatch.setattr(client, "finish", lambda s: {"result": {"exit_code": 3}})
    result = jobs.step(
        tmp_path, "s-1", ("bash", "-c", "x"), environ={"PATH": "/bin"}, stdin=7, env=["A=b"]
    )
    assert result == {"exit_code": 3}
    assert sent == {
        "home": tmp_path,
        "session_id": "s-1",
        "message": {
            "op": "exec",
            "argv": ["bash", "-c", "x"],
            "environ": {"PATH": "/bin"},
            "env": ["A=b"],
            "cwd": None,
            "timeout": None,
            "approve": False,
            "detach": False,
        },
        "stdio": (7, 1, 2),
    }
    assert sock.calls == ["close"]


def test_a_cancelled_step_tells_the_keeper_and_waits_for_the_end(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sock = FakeSock()
    finishes: list[FakeSock] = []

    def finish(s: FakeSock) -> dict[str, Any]:
        finishes.append(s)
        if len(finishes) == 1:
            raise jobs.Terminated(signal.SIGTERM)
        raise CodexBoxError("the keeper recorded the end and hung up")

    monkeypatch.setattr(client, "begin", lambda *a, **k: sock)
    monkeypatch.setattr(client, "finish", finish)
    with pytest.raises(jobs.Terminated):
        jobs.step(tmp_path, "s-1", ("true",), environ={}, stdin=0)
    assert finishes == [sock, sock]
    assert sock.calls == [("shutdown", socket.SHUT_WR), ("settimeout", 10.0), "close"]


# --- stop_named ----------------------------------------------------------------------


def test_stop_named_stops_live_sessions_and_removes_dead_ones_of_that_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    records = [
        (SimpleNamespace(id="a", name="gl-1"), True),
        (SimpleNamespace(id="b", name="gl-1-runner"), True),
        (SimpleNamespace(id="c", name="gl-1"), False),
        (SimpleNamespace(id="d", name=None), True),
    ]
    done: list[tuple[Any, ...]] = []

    def request(home: Path, sid: str, msg: dict[str, Any]) -> dict[str, Any]:
        done.append(("request", sid, msg["op"]))
        return {}

    def wait_stopped(home: Path, sid: str, *, timeout_s: float) -> bool:
        done.append(("wait", sid, timeout_s))
        return True

    monkeypatch.setattr(session_store, "all_sessions", lambda home: records)
    monkeypatch.setattr(client, "request", request)
    monkeypatch.setattr(client, "wait_stopped", wait_stopped)
    monkeypatch.setattr(session_store, "remove", lambda home, sid: done.append(("remove", sid)))
    assert jobs.stop_named(tmp_path, "gl-1") is True
    assert done == [("request", "a", "stop"), ("wait", "a", 30.0), ("remove", "c")]


def test_stop_named_of_a_session_that_never_started_finds_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(session_store, "all_sessions", lambda home: [])
    assert jobs.stop_named(tmp_path, "gl-1") is False


def test_stop_named_goes_on_when_the_keeper_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    waited: list[str] = []

    def refuse(home: Path, sid: str, msg: dict[str, Any]) -> None:
        raise CodexBoxError("no keeper")

    monkeypatch.setattr(
        session_store, "all_sessions", lambda home: [(SimpleNamespace(id="a", name="gl-1"), True)]
    )
    monkeypatch.setattr(client, "request", refuse)

    def wait_stopped(home: Path, sid: str, *, timeout_s: float) -> bool:
        waited.append(sid)
        return True

    monkeypatch.setattr(client, "wait_stopped", wait_stopped)
    assert jobs.stop_named(tmp_path, "gl-1") is True
    assert waited == ["a"]


# --- sessions' pure helpers ----------------------------------------------------------


def test_session_names() -> None:
    assert sessions.name("1001", sessions.JOB) == "gl-1001"
    assert sessions.name("1001", sessions.RUNNER) == "gl-1001-runner"


def test_the_default_builds_root_is_in_the_user_s_home() -> None:
    context = SimpleNamespace(user_home="/home/runner")
    assert sessions.default_builds_root(context) == "/home/runner/codex-box-builds"  # type: ignore[arg-type]


@pytest.mark.parametrize("private_tmp", [True, False])
def test_the_parent_of_the_runner_s_job_directory_is_masked(private_tmp: bool) -> None:
    # $TMPDIR/custom-executor<N>/: one per job, each with its response (a token, every
    # variable) and stage scripts. The parent is masked, not only this job's directory:
    # its neighbours' must not be readable either (pure: nothing is looked up on disk).
    response = "/srv/runner-tmp/custom-executor123/response.json"
    hidden = sessions.runner_files({"JOB_RESPONSE_FILE": response}, private_tmp=private_tmp)
    tmp = ("/tmp",) if not private_tmp else ()
    assert hidden == tuple(sorted(("/srv/runner-tmp", *tmp)))


def test_a_relative_response_path_is_masked_as_an_absolute_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    hidden = sessions.runner_files({"JOB_RESPONSE_FILE": "t/ce1/r.json"}, private_tmp=False)
    assert set(hidden) == {str(tmp_path / "t"), "/tmp"}


@pytest.mark.parametrize("environ", [{}, {"JOB_RESPONSE_FILE": ""}])
def test_without_a_response_path_only_the_host_tmp_is_masked(environ: dict[str, str]) -> None:
    assert sessions.runner_files(environ, private_tmp=False) == ("/tmp",)
    assert sessions.runner_files(environ, private_tmp=True) == ()


@pytest.mark.parametrize(
    ("response", "private", "shared"),
    [
        # The runner's default $TMPDIR: /tmp itself holds the job directories.
        ("/tmp/custom-executor1/r.json", (), ("/tmp",)),
        ("/tmp/runner/custom-executor1/r.json", (), ("/tmp", "/tmp/runner")),
        # Not under /tmp, however alike its name: masked in every profile.
        ("/tmpfoo/custom-executor1/r.json", ("/tmpfoo",), ("/tmp", "/tmpfoo")),
        ("/var/tmp/custom-executor1/r.json", ("/var/tmp",), ("/tmp", "/var/tmp")),
    ],
)
def test_under_a_private_tmp_paths_in_tmp_are_not_masked(
    response: str, private: tuple[str, ...], shared: tuple[str, ...]
) -> None:
    # A private /tmp already hides the host's; masking a path in it would take the
    # job's own /tmp away.
    environ = {"JOB_RESPONSE_FILE": response}
    assert sessions.runner_files(environ, private_tmp=True) == private
    assert sessions.runner_files(environ, private_tmp=False) == shared


# --- plan: the job's directories, profiles and lifetime -------------------------------


def _job(**overrides: Any) -> job.Job:
    fields: dict[str, Any] = {
        "id": "1001",
        "token": "glcbt-64_TestJobToken0123456789",
        "server": "gitlab.example.test",
        "project_id": "77",
    }
    fields.update(overrides)
    return job.Job(**fields)


def _plan(
    store: ProfileStore, tmp_path: Path, the_job: job.Job, environ: dict[str, str] | None = None
) -> job.JobState:
    context = SimpleNamespace(store=store, home=tmp_path / "codex", user_home=str(tmp_path))
    return sessions.plan(
        context,  # type: ignore[arg-type]
        environ or {},
        the_job,
        profile=None,
        max_profile=None,
        runner_profile=None,
        backend=None,
        image=None,
    )


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [
        (3600, 3600 + 600),
        (1, 1 + 600),
        (30 * 86400 - 1, 30 * 86400 - 1 + 600),
        (None, 8 * 3600 + 600),
    ],
)  # fmt: skip
def test_a_session_outlives_the_job_s_timeout_by_ten_minutes(
    store: ProfileStore, tmp_path: Path, timeout: int | None, seconds: int
) -> None:
    # The timeout GitLab sent (job.timeout_s); CUSTOM_ENV_CI_JOB_TIMEOUT is a job
    # variable like any other: a job setting it cannot stretch its sessions.
    environ = {"CUSTOM_ENV_CI_JOB_TIMEOUT": "999999999"}
    state = _plan(store, tmp_path, _job(timeout_s=timeout), environ)
    assert state.lifetime_s == float(seconds)


def test_a_job_state_without_a_plan_lives_eight_hours_and_ten_minutes() -> None:
    state = job.JobState(
        job_id="1", profile="workspace", runner_profile=None, backend=None, image=None,
        root="/b/1/1", builds="/b/1/1/builds", cache="/b/1/1/cache",
    )  # fmt: skip
    assert state.lifetime_s == float(8 * 3600 + 600)


def test_plan_makes_the_job_s_own_private_directories(store: ProfileStore, tmp_path: Path) -> None:
    state = _plan(store, tmp_path, _job())
    root = f"{tmp_path}/codex-box-builds/77/1001"
    assert (state.root, state.builds, state.cache) == (root, f"{root}/builds", f"{root}/cache")
    for path in (state.builds, state.cache):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert job.state_dir(tmp_path / "codex").is_dir()  # before any sandbox: masked in each
    assert state.profile == "workspace"
    assert state.runner_profile is not None and state.runner_profile.startswith("gitlab-gitlab-")
    assert state.sessions == {}


def test_plan_takes_the_config_stage_s_root_when_it_is_the_job_s(
    store: ProfileStore, tmp_path: Path
) -> None:
    root = f"{tmp_path}/elsewhere/77/1001"
    state = _plan(store, tmp_path, _job(), {"CODEX_BOX_GITLAB_ROOT": root})
    assert state.root == root and os.path.isdir(f"{root}/builds")


@pytest.mark.parametrize(
    "root",
    ["/b/77/1002", "/b/78/1001", "/b/1001", "b/77/1001", "/b/177/1001x", "/b/77/1001/"],
)
def test_plan_refuses_a_root_that_is_not_the_job_s(
    store: ProfileStore, tmp_path: Path, root: str
) -> None:
    with pytest.raises(ProtocolError, match="is not job 1001's"):
        _plan(store, tmp_path, _job(), {"CODEX_BOX_GITLAB_ROOT": root})
    assert not (tmp_path / "codex-box-builds").exists()


def test_plan_refuses_an_unknown_profile_the_job_asks_for(
    store: ProfileStore, tmp_path: Path
) -> None:
    with pytest.raises(Refused, match="unknown profile"):
        _plan(store, tmp_path, _job(), {"CUSTOM_ENV_CODEX_BOX_PROFILE": "no-such-profile"})


def test_plan_without_a_server_gives_the_runner_stages_no_network(
    store: ProfileStore, tmp_path: Path
) -> None:
    assert _plan(store, tmp_path, _job(server="")).runner_profile == "workspace"
