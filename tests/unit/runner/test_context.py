"""HostContext: the one composition root a front door builds (pure: no engine, no kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.errors import ConfigError
from orchestrator.runner.context import BACKEND_ENV, SESSION_ENV, HostContext


def test_the_working_directory_is_read_only_when_a_verb_needs_it(
    base_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    context = HostContext.from_environ(base_env)  # from a deleted directory: still fine
    assert context.home.name == ".codex"
    assert context.workspace_path(str(tmp_path)) == str(tmp_path)  # absolute: no cwd needed
    with pytest.raises(FileNotFoundError):
        _ = context.cwd


def test_everything_comes_from_the_one_environ_snapshot(base_env: dict[str, str], home: Path,
                                                        codex_home: Path, workspace: Path) -> None:
    environ = {**base_env, SESSION_ENV: "outer"}
    context = HostContext.from_environ(environ, cwd=str(workspace))
    environ["CODEX_HOME"] = "/elsewhere"  # a later change to the caller's dict is not seen
    assert context.home == codex_home and context.user_home == str(home)
    assert context.session_id == "outer" and context.cwd == str(workspace)
    assert context.user  # a login name, or "uid N": never empty (records sanitize it)
    with pytest.raises(TypeError):
        context.environ["X"] = "y"  # type: ignore[index]


def test_backend_choice_is_flag_then_environment_then_config_then_auto(
    base_env: dict[str, str], codex_home: Path, workspace: Path
) -> None:
    (codex_home / "config.toml").write_text('[sandbox]\nbackend = "podman"\n')
    context = HostContext.from_environ(base_env, cwd=str(workspace))
    assert context.backend_choice("docker") == "docker"
    assert context.backend_choice(None) == "podman"
    with_env = HostContext.from_environ({**base_env, BACKEND_ENV: "native"}, cwd=str(workspace))
    assert with_env.backend_choice(None) == "native"
    (codex_home / "config.toml").write_text("")
    assert HostContext.from_environ(base_env, cwd=str(workspace)).backend_choice(None) == "auto"


def test_a_config_that_does_not_load_fails_the_question_but_not_the_audit_log(
    base_env: dict[str, str], codex_home: Path, workspace: Path
) -> None:
    (codex_home / "config.toml").write_text("[sandbox]\nbackend = [unclosed\n")
    context = HostContext.from_environ(base_env, cwd=str(workspace))
    with pytest.raises(ConfigError, match=r"config\.toml"):
        context.backend_choice(None)
    log = context.audit_log(strict=False)  # a run's: its refusal is still recorded
    assert log.path == codex_home / "audit.log" and log.sinks == ()
    with pytest.raises(ConfigError):  # a grant's: not made without its configured sinks
        context.audit_log(strict=True)


def test_resolve_uses_the_context_s_config_and_store(
    base_env: dict[str, str], codex_home: Path, workspace: Path
) -> None:
    (codex_home / "config.toml").write_text('[sandbox]\nprofile = "workspace"\n')
    context = HostContext.from_environ(base_env, cwd=str(workspace))
    assert context.resolve(None, workspace).profile.name == "workspace"
    assert context.resolve("offline", workspace).source.value == "flag"
