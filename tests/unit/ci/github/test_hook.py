"""``codex-box ci github-hook``'s refusals, which start nothing (orchestrator.ci.github.hook);
the four commands run for real in tests/integration/test_github_ci.py."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.ci.github import hook


@pytest.fixture
def environ(codex_home: Path, home: Path) -> dict[str, str]:
    return {"CODEX_HOME": str(codex_home), "HOME": str(home), "PATH": "/usr/bin:/bin"}


def _call(environ: dict[str, str], data: dict[str, Any]) -> int:
    return hook.main(environ, io.StringIO(json.dumps(data)))


def _no_sessions(codex_home: Path) -> bool:
    sessions = codex_home / "sessions"
    return not sessions.exists() or not any(sessions.iterdir())


def test_a_job_with_service_containers_is_refused_with_the_reason(
    environ: dict[str, str],
    codex_home: Path,
    tmp_path: Path,
    prepare_example: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    response = tmp_path / "response.json"
    response.touch()
    assert _call(environ, {**prepare_example, "responseFile": str(response)}) == 126
    err = capsys.readouterr().err
    assert "service containers (redis)" in err and "outside the profile" in err
    assert response.read_text() == "" and _no_sessions(codex_home)


def test_a_job_without_a_job_container_is_refused(
    environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    data = {"command": "prepare_job", "responseFile": "/nonexistent", "args": {"services": []}}
    assert _call(environ, data) == 126
    assert "only jobs with a `container:`" in capsys.readouterr().err


def test_a_job_asking_for_a_wider_profile_is_refused_before_anything_starts(
    environ: dict[str, str],
    codex_home: Path,
    tmp_path: Path,
    prepare_example: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    container = dict(prepare_example["args"]["container"])
    container["environmentVariables"] = {"CODEX_BOX_PROFILE": "workspace-net"}
    data = {**prepare_example, "responseFile": str(tmp_path / "r.json")}
    data["args"] = {"container": container, "services": []}
    assert _call({**environ, "CODEX_BOX_PROFILE": "workspace"}, data) == 126
    err = capsys.readouterr().err
    assert "'workspace-net'" in err and "wider than this runner's 'workspace'" in err
    assert _no_sessions(codex_home)


def test_a_job_cannot_ask_for_trusted_on_a_default_runner(
    environ: dict[str, str], tmp_path: Path, prepare_example: dict[str, Any]
) -> None:
    container = dict(prepare_example["args"]["container"])
    container["environmentVariables"] = {"CODEX_BOX_PROFILE": "danger-full-access"}
    data = {**prepare_example, "responseFile": str(tmp_path / "r.json")}
    data["args"] = {"container": container}
    assert _call(environ, data) == 126


def test_an_unknown_runner_profile_fails_naming_it(
    environ: dict[str, str],
    tmp_path: Path,
    prepare_example: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = {**prepare_example, "responseFile": str(tmp_path / "r.json")}
    data["args"] = {"container": prepare_example["args"]["container"]}
    assert _call({**environ, "CODEX_BOX_PROFILE": "ofline"}, data) == 125
    assert "unknown profile 'ofline'" in capsys.readouterr().err


def test_a_job_container_without_the_work_directory_is_bad_input(
    environ: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = {
        "command": "prepare_job",
        "responseFile": str(tmp_path / "r.json"),
        "args": {"container": {"image": "x", "systemMountVolumes": []}},
    }
    assert _call(environ, data) == 2
    assert "no mount at /__w" in capsys.readouterr().err


def test_malformed_stdin_is_bad_input(
    environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert hook.main(environ, io.StringIO("not json")) == 2
    assert "bad hook input" in capsys.readouterr().err


@pytest.mark.parametrize("state", [{}, {"session": ""}, {"session": 7}])
def test_a_step_whose_state_names_no_session_is_bad_input(
    environ: dict[str, str], script_example: dict[str, Any], state: dict[str, Any]
) -> None:
    assert _call(environ, {**script_example, "state": state}) == 2


def test_a_step_naming_a_session_that_does_not_exist_fails(
    environ: dict[str, str], script_example: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code = _call(environ, {**script_example, "state": {"session": "0123456789ab"}})
    assert code not in (0, 2)
    assert "0123456789ab" in capsys.readouterr().err


def test_cleanup_of_a_session_already_gone_succeeds(
    environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    data = {"command": "cleanup_job", "responseFile": None, "state": {"session": "0123456789ab"}}
    assert _call(environ, data) == 0
    assert "already gone" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["hook.sh", "index.js"])
def test_the_shims_ship_inside_the_package_and_never_look_codex_box_up_on_path(
    name: str,
) -> None:
    text = Path(hook.__file__).with_name(name).read_text()
    assert "CODEX_BOX_BIN" in text
    assert "ci github-hook" in text or "['ci', 'github-hook']" in text
    assert "exec codex-box" not in text and "spawnSync('codex-box'" not in text


def test_the_hook_s_sessions_never_get_the_runner_s_path() -> None:
    runner = {"PATH": "/home/r/_work/repo/repo/planted:/usr/bin", "HOME": "/h", "RUNNER_X": "1"}
    assert hook.base_environ(runner) == {"HOME": "/h", "PATH": hook.SAFE_PATH}
    assert hook.base_environ({**runner, "CODEX_BOX_PATH": "/opt/bin"})["PATH"] == "/opt/bin"
