"""Which profile applies: flag > CODEX_SECURITY_PROFILE > .codex-profile > config > offline.

A .codex-profile wider than what applies without it counts only once approved
(test_profile_approval.py); these tests approve the ones they need."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.core.errors import EXIT_REFUSED, ConfigError, Refused
from orchestrator.profiles.store import ProfileStore
from orchestrator.resolve import approval as profile_approval
from orchestrator.resolve.precedence import Resolution, Source, resolve_profile
from orchestrator.resolve.profile_file import find_profile_file
from orchestrator.settings.config import Config, load_config


@pytest.fixture
def resolve(workspace: Path, codex_home: Path, store: ProfileStore) -> Callable[..., Resolution]:
    def run(
        *, flag: str | None = None, env: str | None = None, where: Path | None = None
    ) -> Resolution:
        environ = {"CODEX_SECURITY_PROFILE": env} if env is not None else {}
        return resolve_profile(
            flag=flag,
            environ=environ,
            workspace=where or workspace,
            config=load_config(codex_home),
            store=store,
            codex_home=codex_home,
        )

    return run


def approved(codex_home: Path, path: Path, text: str) -> None:
    """Write a .codex-profile and approve it (`codex-box profiles allow`)."""
    path.write_text(text)
    profile_approval.approve(
        codex_home, path, text.encode(), profile=text.strip(), approved_by="test"
    )


def set_config(codex_home: Path, mode: str) -> None:
    (codex_home / "config.toml").write_text(f'[sandbox]\nmode = "{mode}"\n')


def test_default_is_offline_from_the_built_in_default(resolve: Callable[..., Resolution]) -> None:
    resolution = resolve()
    assert resolution.profile.name == "offline"
    assert resolution.source is Source.DEFAULT
    assert resolution.describe() == "default (built-in default)"


def test_config_beats_the_default(resolve: Callable[..., Resolution], codex_home: Path) -> None:
    set_config(codex_home, "workspace-write")
    resolution = resolve()
    assert resolution.profile.name == "workspace"
    assert resolution.source is Source.CONFIG
    assert resolution.detail == str(codex_home / "config.toml")


def test_codex_profile_file_beats_config(
    resolve: Callable[..., Resolution], codex_home: Path, workspace: Path
) -> None:
    set_config(codex_home, "workspace-write")
    approved(codex_home, workspace / ".codex-profile", "net-read-only\n")
    resolution = resolve()
    assert resolution.profile.name == "net-read-only"
    assert resolution.source is Source.FILE
    assert resolution.detail == str(workspace / ".codex-profile")


def test_env_var_beats_the_codex_profile_file(
    resolve: Callable[..., Resolution], workspace: Path
) -> None:
    (workspace / ".codex-profile").write_text("net-read-only\n")
    resolution = resolve(env="workspace")
    assert resolution.profile.name == "workspace"
    assert resolution.source is Source.ENV
    assert resolution.detail == "CODEX_SECURITY_PROFILE"


def test_flag_beats_everything(
    resolve: Callable[..., Resolution], workspace: Path, codex_home: Path
) -> None:
    set_config(codex_home, "workspace-write")
    (workspace / ".codex-profile").write_text("net-read-only\n")
    resolution = resolve(flag="workspace-net", env="workspace")
    assert resolution.profile.name == "workspace-net"
    assert resolution.source is Source.FLAG
    assert resolution.detail == "--profile workspace-net"


def test_blank_env_var_is_ignored(
    resolve: Callable[..., Resolution], workspace: Path, codex_home: Path
) -> None:
    approved(codex_home, workspace / ".codex-profile", "workspace\n")
    assert resolve(env="  ").source is Source.FILE


def test_flag_may_be_a_codex_alias(resolve: Callable[..., Resolution]) -> None:
    assert resolve(flag="workspace-write").profile.name == "workspace"


def test_unknown_flag_value_names_where_it_came_from(resolve: Callable[..., Resolution]) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(flag="workspce")
    assert "(from --profile)" in info.value.message
    assert "did you mean 'workspace'?" in info.value.hint


def test_unknown_env_value_names_the_variable(resolve: Callable[..., Resolution]) -> None:
    with pytest.raises(ConfigError, match="from CODEX_SECURITY_PROFILE"):
        resolve(env="nope")


def test_profile_file_is_found_by_walking_up_and_the_nearest_wins(
    resolve: Callable[..., Resolution], workspace: Path, codex_home: Path
) -> None:
    deep = workspace / "pkg" / "src"
    deep.mkdir(parents=True)
    approved(codex_home, workspace / ".codex-profile", "workspace\n")
    assert resolve(where=deep).profile.name == "workspace"
    approved(codex_home, workspace / "pkg" / ".codex-profile", "net-read-only\n")
    resolution = resolve(where=deep)
    assert resolution.profile.name == "net-read-only"
    assert resolution.detail == str(workspace / "pkg" / ".codex-profile")


def test_empty_or_comment_only_profile_file_is_skipped_and_the_walk_goes_on(
    resolve: Callable[..., Resolution], workspace: Path, codex_home: Path
) -> None:
    inner = workspace / "inner"
    inner.mkdir()
    set_config(codex_home, "workspace-write")  # so the file applies without approval
    (workspace / ".codex-profile").write_text("# project default\nworkspace  # comment\n")
    (inner / ".codex-profile").write_text("")
    assert resolve(where=inner).profile.name == "workspace"
    (inner / ".codex-profile").write_text("# nothing chosen here\n\n   \n")
    resolution = resolve(where=inner)
    assert resolution.profile.name == "workspace"
    assert resolution.detail == str(workspace / ".codex-profile")


def test_profile_file_with_two_names_is_an_error(
    resolve: Callable[..., Resolution], workspace: Path
) -> None:
    path = workspace / ".codex-profile"
    path.write_text("workspace\nworkspace-net\n")
    with pytest.raises(ConfigError) as info:
        resolve()
    assert str(path) in info.value.message and "expected one profile name" in info.value.message
    assert "single name" in info.value.hint


def test_profile_file_with_two_words_on_one_line_is_an_error(workspace: Path) -> None:
    (workspace / ".codex-profile").write_text("workspace net\n")
    with pytest.raises(ConfigError, match="expected one profile name"):
        find_profile_file(workspace)


def test_profile_file_that_is_a_directory_is_an_error(workspace: Path) -> None:
    (workspace / ".codex-profile").mkdir()
    with pytest.raises(ConfigError, match="is not a regular file"):
        find_profile_file(workspace)


def test_a_fifo_or_device_planted_as_codex_profile_neither_hangs_nor_is_read(
    workspace: Path,
) -> None:
    """A sandboxed command may plant these in a directory it can write."""
    fifo = workspace / "fifo" / ".codex-profile"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        find_profile_file(fifo.parent)
    link = workspace / "link"
    link.mkdir()
    (link / ".codex-profile").symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match="cannot read"):
        find_profile_file(link)


def test_an_oversized_codex_profile_is_refused(workspace: Path) -> None:
    (workspace / ".codex-profile").write_text("workspace\n" + "#" * 10_000)
    with pytest.raises(ConfigError, match="larger than"):
        find_profile_file(workspace)


def test_profile_file_with_an_unknown_name_names_the_file(
    resolve: Callable[..., Resolution], workspace: Path
) -> None:
    (workspace / ".codex-profile").write_text("ofline\n")
    with pytest.raises(ConfigError) as info:
        resolve()
    assert str(workspace / ".codex-profile") in info.value.message
    assert "did you mean 'offline'?" in info.value.hint


@pytest.mark.parametrize("name", ["trusted", "danger-full-access"])
def test_profile_file_can_never_select_trusted(
    resolve: Callable[..., Resolution], workspace: Path, name: str
) -> None:
    (workspace / ".codex-profile").write_text(f"{name}\n")
    with pytest.raises(Refused) as info:
        resolve()
    assert info.value.exit_code == EXIT_REFUSED == 126
    assert str(workspace / ".codex-profile") in info.value.message
    assert "--yes-i-trust-this-workspace" in info.value.hint


def test_profile_file_cannot_select_a_user_profile_extending_trusted(
    resolve: Callable[..., Resolution],
    workspace: Path,
    write_profile: Callable[[str, str], Path],
) -> None:
    write_profile("almost", "extends: trusted\nnetwork: none\n")
    (workspace / ".codex-profile").write_text("almost\n")
    with pytest.raises(Refused) as info:
        resolve()
    assert info.value.exit_code == 126


def test_profile_file_in_a_parent_directory_cannot_select_trusted_either(
    resolve: Callable[..., Resolution], workspace: Path
) -> None:
    deep = workspace / "a" / "b"
    deep.mkdir(parents=True)
    (workspace / ".codex-profile").write_text("trusted\n")
    with pytest.raises(Refused):
        resolve(where=deep)


def test_flag_env_and_config_may_select_trusted_the_opt_in_is_asked_later(
    resolve: Callable[..., Resolution], codex_home: Path
) -> None:
    assert resolve(flag="trusted").profile.requires_opt_in
    assert resolve(env="trusted").source is Source.ENV
    set_config(codex_home, "danger-full-access")
    resolution = resolve()
    assert resolution.profile.name == "trusted" and resolution.source is Source.CONFIG


def test_a_trusted_profile_file_is_ignored_when_the_flag_decides(
    resolve: Callable[..., Resolution], workspace: Path
) -> None:
    (workspace / ".codex-profile").write_text("trusted\n")
    assert resolve(flag="workspace").profile.name == "workspace"


def test_resolution_uses_the_config_object_it_is_given(
    workspace: Path, store: ProfileStore, tmp_path: Path
) -> None:
    resolution = resolve_profile(
        flag=None,
        environ={},
        workspace=workspace,
        config=Config(path=tmp_path / "c.toml", profile="workspace-net"),
        store=store,
    )
    assert resolution.profile.name == "workspace-net"
    assert resolution.detail == str(tmp_path / "c.toml")
