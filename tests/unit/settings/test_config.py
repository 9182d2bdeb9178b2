"""$CODEX_HOME/config.toml: the seed's form, Codex's form, and every bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.errors import EXIT_SETUP, ConfigError
from orchestrator.settings.config import codex_home, load_config


def write_config(codex_home: Path, text: str) -> Path:
    path = codex_home / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(codex_home: Path, text: str) -> tuple[Path, ConfigError]:
    path = write_config(codex_home, text)
    with pytest.raises(ConfigError) as info:
        load_config(codex_home)
    assert info.value.exit_code == EXIT_SETUP
    assert info.value.hint
    return path, info.value


def test_a_missing_config_file_selects_nothing(codex_home: Path) -> None:
    config = load_config(codex_home)
    assert config.profile is None and config.backend is None
    assert config.path == codex_home / "config.toml"


@pytest.mark.parametrize(
    ("text", "profile"),
    [
        ('[sandbox]\nmode = "workspace-write"\n', "workspace"),
        ('[sandbox]\nmode = "workspace-write"\nnetwork_access = true\n', "workspace-net"),
        ('[sandbox]\nmode = "workspace-write"\nnetwork_access = false\n', "workspace"),
        ('[sandbox]\nmode = "read-only"\n', "offline"),
        ('[sandbox]\nmode = "danger-full-access"\n', "trusted"),
        ('[sandbox]\nprofile = "net-read-only"\n', "net-read-only"),
        ('[sandbox]\nprofile = "workspace-net"\nmode = "read-only"\n', "workspace-net"),
    ],
)
def test_seed_form_maps_to_a_profile(codex_home: Path, text: str, profile: str) -> None:
    write_config(codex_home, text)
    assert load_config(codex_home).profile == profile


@pytest.mark.parametrize(
    ("text", "profile"),
    [
        ('sandbox_mode = "workspace-write"\n', "workspace"),
        (
            'sandbox_mode = "workspace-write"\n[sandbox_workspace_write]\nnetwork_access = true\n',
            "workspace-net",
        ),
        (
            'sandbox_mode = "workspace-write"\n[sandbox_workspace_write]\nnetwork_access = false\n',
            "workspace",
        ),
        ('sandbox_mode = "read-only"\n', "offline"),
        ('sandbox_mode = "danger-full-access"\n', "trusted"),
    ],
)
def test_codex_form_maps_to_a_profile(codex_home: Path, text: str, profile: str) -> None:
    write_config(codex_home, text)
    assert load_config(codex_home).profile == profile


def test_seed_form_wins_over_codex_form(codex_home: Path) -> None:
    write_config(codex_home, 'sandbox_mode = "danger-full-access"\n[sandbox]\nmode = "read-only"\n')
    assert load_config(codex_home).profile == "offline"


def test_codex_workspace_write_network_setting_does_not_give_read_only_mode_network(
    codex_home: Path,
) -> None:
    write_config(
        codex_home,
        'sandbox_mode = "read-only"\n[sandbox_workspace_write]\nnetwork_access = true\n',
    )
    assert load_config(codex_home).profile == "offline"


def test_backend_setting_is_read(codex_home: Path) -> None:
    write_config(codex_home, '[sandbox]\nbackend = "native"\n')
    config = load_config(codex_home)
    assert config.backend == "native" and config.profile is None


def test_unknown_top_level_keys_belong_to_codex_and_are_ignored(codex_home: Path) -> None:
    write_config(
        codex_home,
        'model = "o3"\napproval_policy = "never"\n[mcp_servers.docs]\ncommand = "x"\n'
        '[sandbox]\nmode = "workspace-write"\n',
    )
    assert load_config(codex_home).profile == "workspace"


def test_unknown_key_inside_sandbox_is_an_error_with_a_suggestion(codex_home: Path) -> None:
    path, err = config_error(codex_home, '[sandbox]\nmdoe = "workspace-write"\n')
    assert str(path) in err.message
    assert "'sandbox.mdoe'" in err.message
    assert "did you mean 'mode'?" in err.hint
    assert "network_access" in err.hint


def test_malformed_toml_names_the_file(codex_home: Path) -> None:
    path, err = config_error(codex_home, '[sandbox\nmode = "workspace-write"\n')
    assert err.message.startswith(f"{path}: malformed TOML")
    assert "line 1" in err.message
    assert "fix the TOML syntax" in err.hint


def test_config_that_is_not_utf8_is_an_error(codex_home: Path) -> None:
    path = codex_home / "config.toml"
    path.write_bytes(b'[sandbox]\nmode = "\xff"\n')
    with pytest.raises(ConfigError, match="malformed TOML") as info:
        load_config(codex_home)
    assert str(path) in info.value.message


@pytest.mark.parametrize(
    ("text", "key", "fix"),
    [
        ("[sandbox]\nmode = 3\n", "sandbox.mode", 'mode = "workspace"'),
        ('[sandbox]\nmode = ""\n', "sandbox.mode", 'mode = "workspace"'),
        ("[sandbox]\nprofile = true\n", "sandbox.profile", 'profile = "workspace"'),
        ("[sandbox]\nbackend = 1\n", "sandbox.backend", 'backend = "workspace"'),
        ('[sandbox]\nnetwork_access = "yes"\n', "sandbox.network_access", "true or false"),
        ("sandbox_mode = 1\n", "sandbox_mode", 'sandbox_mode = "workspace"'),
        (
            'sandbox_mode = "workspace-write"\n[sandbox_workspace_write]\nnetwork_access = 1\n',
            "sandbox_workspace_write.network_access",
            "true or false",
        ),
    ],
)
def test_wrong_types_name_the_file_key_and_fix(
    codex_home: Path, text: str, key: str, fix: str
) -> None:
    path, err = config_error(codex_home, text)
    assert str(path) in err.message
    assert f"'{key}'" in err.message
    assert fix in err.hint


def test_sandbox_that_is_not_a_table_is_an_error(codex_home: Path) -> None:
    path, err = config_error(codex_home, 'sandbox = "workspace"\n')
    assert str(path) in err.message and "'sandbox' must be a table" in err.message
    assert "[sandbox]" in err.hint


def test_codex_home_defaults_to_dot_codex_in_home(home: Path) -> None:
    assert codex_home({"HOME": str(home)}) == home / ".codex"


def test_codex_home_env_var_wins(tmp_path: Path, home: Path) -> None:
    assert codex_home({"HOME": str(home), "CODEX_HOME": str(tmp_path / "x")}) == tmp_path / "x"
