"""gitlab-runner's custom-executor protocol as data (orchestrator.ci.gitlab.protocol) and
the ``config`` stage that answers it (driver.config, in-process: no session, no engine)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator import __version__
from orchestrator.ci.gitlab import driver, protocol
from orchestrator.ci.gitlab import job as job_module
from orchestrator.ci.gitlab.protocol import ExitCodes, JobDirs, ProtocolError

# --- stages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stage",
    [
        "get_sources",
        "restore_cache",
        "download_artifacts",
        "archive_cache",
        "archive_cache_on_failure",
        "upload_artifacts_on_success",
        "upload_artifacts_on_failure",
    ],
)
def test_the_runner_s_own_stages_are_runner_stages(stage: str) -> None:
    assert protocol.is_runner_stage(stage) is True
    assert protocol.check_stage(stage) == stage


@pytest.mark.parametrize(
    "stage",
    [
        "prepare_script",
        "build_script",
        "step_script",
        "step_release",
        "after_script",
        "cleanup_file_variables",
        "a_stage_a_later_runner_invents",
    ],
)
def test_every_other_stage_runs_as_the_job(stage: str) -> None:
    assert protocol.is_runner_stage(stage) is False
    assert protocol.check_stage(stage) == stage


@pytest.mark.parametrize(
    "stage",
    ["", "Build_script", "1step", "step-script", "step script", "../x", "a" * 65, "step\x00"],
)
def test_a_stage_name_the_runner_never_sends_is_refused(stage: str) -> None:
    with pytest.raises(ProtocolError, match="is not one gitlab-runner sends"):
        protocol.check_stage(stage)


def test_a_stage_name_of_64_characters_is_the_longest_accepted() -> None:
    assert protocol.check_stage("a" * 64) == "a" * 64


def test_a_stage_name_with_a_trailing_newline_is_refused() -> None:
    # `$` (rather than fullmatch) would also match before a final "\n".
    with pytest.raises(ProtocolError):
        protocol.check_stage("step_script\n")


# --- exit codes --------------------------------------------------------------------


def test_exit_codes_are_the_runner_s_own() -> None:
    codes = ExitCodes.of({"BUILD_FAILURE_EXIT_CODE": "41", "SYSTEM_FAILURE_EXIT_CODE": "42"})
    assert (codes.build_failure, codes.system_failure) == (41, 42)


def test_exit_codes_at_the_edges_of_the_range_are_accepted() -> None:
    codes = ExitCodes.of({"BUILD_FAILURE_EXIT_CODE": "1", "SYSTEM_FAILURE_EXIT_CODE": "255"})
    assert (codes.build_failure, codes.system_failure) == (1, 255)


@pytest.mark.parametrize("name", ["BUILD_FAILURE_EXIT_CODE", "SYSTEM_FAILURE_EXIT_CODE"])
@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (None, "is unset"),
        ("", "is unset"),
        ("0", "is '0'"),
        ("256", "is '256'"),
        ("-1", "is '-1'"),
        ("1.0", "is '1.0'"),
        (" 1", "is ' 1'"),
        ("one", "is 'one'"),
        ("0x2", "is '0x2'"),
    ],
)
def test_an_exit_code_that_is_not_1_to_255_is_refused(
    name: str, raw: str | None, shown: str
) -> None:
    environ = {"BUILD_FAILURE_EXIT_CODE": "1", "SYSTEM_FAILURE_EXIT_CODE": "2"}
    if raw is None:
        del environ[name]
    else:
        environ[name] = raw
    with pytest.raises(ProtocolError, match=rf"\${name} {shown}"):
        ExitCodes.of(environ)


def test_an_exit_code_in_superscript_digits_is_refused_as_a_protocol_error() -> None:
    # "²".isdigit() is true, and int("²") raises a bare ValueError: a traceback
    # instead of the driver's message.
    with pytest.raises(ProtocolError):
        ExitCodes.of({"BUILD_FAILURE_EXIT_CODE": "\u00b2", "SYSTEM_FAILURE_EXIT_CODE": "2"})


# --- the job's directories ---------------------------------------------------------


def test_job_dirs_are_the_project_and_job_ids_under_the_builds_root() -> None:
    dirs = JobDirs.of("/srv/cbx/", project_id="77", job_id="1001")
    assert dirs == JobDirs(
        root="/srv/cbx/77/1001",
        builds="/srv/cbx/77/1001/builds",
        cache="/srv/cbx/77/1001/cache",
    )


def test_two_jobs_of_one_project_and_one_job_id_of_two_projects_never_share() -> None:
    roots = {
        JobDirs.of("/b", project_id="1", job_id="1").root,
        JobDirs.of("/b", project_id="1", job_id="2").root,
        JobDirs.of("/b", project_id="2", job_id="1").root,
        JobDirs.of("/b", project_id="11", job_id="1").root,
    }
    assert roots == {"/b/1/1", "/b/1/2", "/b/2/1", "/b/11/1"}


def test_the_longest_ids_are_accepted() -> None:
    dirs = JobDirs.of("/b", project_id="9" * 20, job_id="0" * 20)
    assert dirs.root == f"/b/{'9' * 20}/{'0' * 20}"


_NOT_AN_ID = ["", "..", ".", "-1", "1" * 21, "1/..", "../1", "/1", "0x1", " 1", "1 ", "1\x00",
              "\u0663", "\u00b2", "1\n", "\n1", "1e3", "+1"]  # fmt: skip


@pytest.mark.parametrize("value", _NOT_AN_ID)
def test_a_project_id_that_is_not_a_number_cannot_name_a_directory(value: str) -> None:
    with pytest.raises(ProtocolError, match=r"the job's project id .* cannot name a directory"):
        JobDirs.of("/b", project_id=value, job_id="1")


@pytest.mark.parametrize("value", _NOT_AN_ID)
def test_a_job_id_that_is_not_a_number_cannot_name_a_directory(value: str) -> None:
    with pytest.raises(ProtocolError, match=r"the job's job id .* cannot name a directory"):
        JobDirs.of("/b", project_id="1", job_id=value)


def test_config_answer_gives_each_job_its_own_directories() -> None:
    dirs = JobDirs.of("/b", project_id="7", job_id="1001")
    answer = protocol.config_answer(dirs, hostname="codex-box-h", job_env={"A": "1"})
    assert answer == {
        "builds_dir": "/b/7/1001/builds",
        "cache_dir": "/b/7/1001/cache",
        "builds_dir_is_shared": False,
        "hostname": "codex-box-h",
        "driver": {"name": "codex-box", "version": __version__},
        "job_env": {"A": "1"},
    }
    assert json.loads(json.dumps(answer)) == answer


# --- the config stage, in-process ----------------------------------------------------

CODES = {"BUILD_FAILURE_EXIT_CODE": "41", "SYSTEM_FAILURE_EXIT_CODE": "42"}
# What a job's own `variables:` can set: nothing of it may decide a directory.
OVERRIDES = {
    "CUSTOM_ENV_CI_PROJECT_PATH_SLUG": "group-other",
    "CUSTOM_ENV_CI_CONCURRENT_PROJECT_ID": "5",
    "CUSTOM_ENV_CI_PROJECT_ID": "999",
    "CUSTOM_ENV_CI_JOB_ID": "999",
}


def test_config_prints_the_answer_with_the_job_s_root_and_id(
    response_file: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    response = response_file(id=77, job_info={"project_id": 12})
    environ = {**CODES, **OVERRIDES, "JOB_RESPONSE_FILE": str(response)}
    assert driver.config(environ, builds_root=str(tmp_path / "b")) == 0
    answer = json.loads(capsys.readouterr().out)
    root = f"{tmp_path}/b/12/77"
    assert answer["builds_dir"] == f"{root}/builds"
    assert answer["cache_dir"] == f"{root}/cache"
    assert answer["builds_dir_is_shared"] is False
    assert answer["job_env"] == {"CODEX_BOX_GITLAB_ROOT": root, "CODEX_BOX_GITLAB_JOB": "77"}


def test_config_of_a_relative_builds_root_answers_absolute_directories(
    response_file: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    response = response_file(id=3, job_info={"project_id": 4})
    assert driver.config({**CODES, "JOB_RESPONSE_FILE": str(response)}, builds_root="b") == 0
    assert json.loads(capsys.readouterr().out)["builds_dir"] == f"{tmp_path}/b/4/3/builds"


@pytest.mark.parametrize(
    "job_info",
    [None, [], {}, {"project_id": None}, {"project_id": "../x"}, {"project_id": True},
     {"project_id": 1.5}, {"project_id": -1}],
)  # fmt: skip
def test_config_without_a_project_id_in_the_response_is_the_runner_s_system_failure(
    response_file: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    job_info: object,
) -> None:
    response = response_file(job_info=job_info)
    environ = {**CODES, **OVERRIDES, "JOB_RESPONSE_FILE": str(response)}
    assert driver.config(environ, builds_root=str(tmp_path)) == 42
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "project id" in captured.err
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # no directory was made


def test_config_without_a_job_response_is_the_runner_s_system_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # CUSTOM_ENV_* alone are the job's to set: the driver refuses rather than trust them.
    environ = {**CODES, **OVERRIDES, "CUSTOM_ENV_CI_JOB_ID": "5"}
    assert driver.config(environ, builds_root=str(tmp_path)) == 42
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "$JOB_RESPONSE_FILE is not set" in captured.err


def test_config_without_the_runner_s_exit_codes_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert driver.config(OVERRIDES, builds_root="/b") == 2
    assert "$BUILD_FAILURE_EXIT_CODE is unset" in capsys.readouterr().err


def test_two_projects_never_share_a_directory_whatever_their_variables_say(
    response_file: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A job's own `variables:` override every CUSTOM_ENV_* value: project A's job sets
    # CI_PROJECT_PATH_SLUG (and the concurrent id) to project B's. The directory still
    # comes from what GitLab sent (job_info.project_id and the job's id).
    answers = []
    for job_id, project_id, path in ((1, 10, "group/a"), (2, 20, "group/b"), (1, 20, "group/b")):
        response = response_file(
            id=job_id,
            job_info={"project_id": project_id},
            repo_url=f"https://gitlab.example.test/{path}.git",
        )
        environ = {**CODES, **OVERRIDES, "JOB_RESPONSE_FILE": str(response)}
        assert driver.config(environ, builds_root=str(tmp_path)) == 0
        answers.append(json.loads(capsys.readouterr().out))
    assert len({a["builds_dir"] for a in answers}) == 3
    assert len({a["cache_dir"] for a in answers}) == 3
    assert [a["builds_dir"] for a in answers] == [
        f"{tmp_path}/10/1/builds",
        f"{tmp_path}/20/2/builds",
        f"{tmp_path}/20/1/builds",
    ]


# --- the cleanup stage, in-process (sessions faked) -----------------------------------


@pytest.fixture
def cleanup_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, str], list[str]]:
    stopped: list[str] = []

    def stop_named(home: Path, name: str) -> bool:
        stopped.append(name)
        return True

    monkeypatch.setattr(driver.jobs, "stop_named", stop_named)
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home), "CODEX_HOME": str(home / ".codex"), "PATH": "/usr/bin"}, stopped


def _prepared(tmp_path: Path, environ: dict[str, str], project: str, job_id: str) -> Path:
    root = tmp_path / "b" / project / job_id
    (root / "builds" / "group" / "proj").mkdir(parents=True)
    (root / "cache").mkdir()
    job_module.save(
        Path(environ["CODEX_HOME"]),
        job_module.JobState(
            job_id=job_id, profile="workspace", runner_profile=None, backend=None, image=None,
            root=str(root), builds=str(root / "builds"), cache=str(root / "cache"),
        ),
    )  # fmt: skip
    return root


def test_cleanup_stops_both_sessions_removes_the_job_s_directory_and_forgets_it(
    response_file: Callable[..., Path],
    tmp_path: Path,
    cleanup_env: tuple[dict[str, str], list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    environ, stopped = cleanup_env
    root = _prepared(tmp_path, environ, "77", "1001")
    other = _prepared(tmp_path, environ, "77", "1002")  # a neighbour: left alone
    environ["JOB_RESPONSE_FILE"] = str(response_file(id=1001))
    assert driver.cleanup(environ) == 0
    assert stopped == ["gl-1001", "gl-1001-runner"]
    assert not root.exists()
    assert other.exists() and (other / "builds" / "group" / "proj").is_dir()
    assert job_module.load(Path(environ["CODEX_HOME"]), "1001") is None
    assert job_module.load(Path(environ["CODEX_HOME"]), "1002") is not None
    assert "job 1001: stopped gl-1001, gl-1001-runner" in capsys.readouterr().out


def test_cleanup_with_keep_builds_keeps_the_job_s_directory(
    response_file: Callable[..., Path],
    tmp_path: Path,
    cleanup_env: tuple[dict[str, str], list[str]],
) -> None:
    environ, _ = cleanup_env
    root = _prepared(tmp_path, environ, "77", "1001")
    environ["JOB_RESPONSE_FILE"] = str(response_file(id=1001))
    assert driver.cleanup(environ, keep_builds=True) == 0
    assert (root / "builds" / "group" / "proj").is_dir()
    assert job_module.load(Path(environ["CODEX_HOME"]), "1001") is None


def test_cleanup_without_a_response_uses_the_config_stage_s_answer(
    tmp_path: Path, cleanup_env: tuple[dict[str, str], list[str]]
) -> None:
    environ, stopped = cleanup_env
    root = tmp_path / "b" / "77" / "1001"
    (root / "builds").mkdir(parents=True)
    environ.update(CODEX_BOX_GITLAB_JOB="1001", CODEX_BOX_GITLAB_ROOT=str(root))
    assert driver.cleanup(environ) == 0
    assert stopped == ["gl-1001", "gl-1001-runner"]
    assert not root.exists()


@pytest.mark.parametrize("root", ["relative/77/1001", "/", "{tmp}/b/77/10011", "{tmp}/b/77"])
def test_cleanup_removes_nothing_that_is_not_the_job_s_directory(
    tmp_path: Path, cleanup_env: tuple[dict[str, str], list[str]], root: str
) -> None:
    environ, _ = cleanup_env
    (tmp_path / "b" / "77" / "10011").mkdir(parents=True)
    environ.update(CODEX_BOX_GITLAB_JOB="1001", CODEX_BOX_GITLAB_ROOT=root.format(tmp=tmp_path))
    assert driver.cleanup(environ) == 0
    assert (tmp_path / "b" / "77" / "10011").is_dir()


def test_cleanup_without_any_job_id_succeeds_and_does_nothing(
    cleanup_env: tuple[dict[str, str], list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    environ, stopped = cleanup_env
    environ["CODEX_BOX_GITLAB_JOB"] = "../1"
    assert driver.cleanup(environ) == 0
    assert stopped == []
    assert "no job id" in capsys.readouterr().err
