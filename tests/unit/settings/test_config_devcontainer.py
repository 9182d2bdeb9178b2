"""config.toml's ``[sandbox] devcontainer``: "auto" (a workspace's devcontainer.json is
used when it has one) or "off" (the default: only with --devcontainer); anything else
is one ConfigError line naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.errors import EXIT_SETUP, ConfigError
from orchestrator.settings.config import load_config


def write(codex_home: Path, text: str) -> Path:
    path = codex_home / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_off_without_a_file_or_the_key(codex_home: Path, tmp_path: Path) -> None:
    assert load_config(tmp_path / "no-codex-home").devcontainer == "off"
    write(codex_home, '[sandbox]\nprofile = "workspace"\n')
    assert load_config(codex_home).devcontainer == "off"


@pytest.mark.parametrize("value", ["auto", "off"])
def test_auto_or_off(codex_home: Path, value: str) -> None:
    write(codex_home, f'[sandbox]\nprofile = "workspace"\ndevcontainer = "{value}"\n')
    config = load_config(codex_home)
    assert config.devcontainer == value
    assert config.profile == "workspace"


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ('"on"', "sandbox.devcontainer 'on' is not auto or off"),
        ('"Auto"', "sandbox.devcontainer 'Auto' is not auto or off"),
        ('"auto "', "sandbox.devcontainer 'auto ' is not auto or off"),
        ('"yes\\nno"', "sandbox.devcontainer 'yes\\nno' is not auto or off"),
        ('""', "'sandbox.devcontainer' must be a non-empty string, got ''"),
        ("true", "'sandbox.devcontainer' must be a non-empty string, got True"),
        ("1", "'sandbox.devcontainer' must be a non-empty string, got 1"),
        ('["auto"]', "'sandbox.devcontainer' must be a non-empty string, got ['auto']"),
    ],
)
def test_anything_else_is_one_config_error_line_naming_the_file(
    codex_home: Path, toml: str, says: str
) -> None:
    path = write(codex_home, f"[sandbox]\ndevcontainer = {toml}\n")
    with pytest.raises(ConfigError) as info:
        load_config(codex_home)
    error = info.value
    assert error.message == f"{path}: {says}"
    assert "\n" not in error.message
    assert error.exit_code == EXIT_SETUP and error.hint


def test_a_misspelt_key_is_unknown(codex_home: Path) -> None:
    write(codex_home, '[sandbox]\ndev_container = "auto"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'sandbox\.dev_container'") as info:
        load_config(codex_home)
    assert "devcontainer" in info.value.hint
