"""[serve] and [serve.pools] of config.toml: the defaults, the pools, and every bad value
a ConfigError naming the file and the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.core.errors import EXIT_SETUP, ConfigError
from orchestrator.settings import serve
from orchestrator.settings.config import load_config
from orchestrator.settings.serve import ServeSettings, parse


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "codex-home"
    path.mkdir()
    return path


def write(home: Path, text: str) -> Path:
    path = home / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_empty_serve_table_gives_the_defaults(home: Path) -> None:
    write(home, "[serve]\n")
    settings = load_config(home).serve
    assert settings == ServeSettings()
    assert (settings.max_concurrent, settings.max_queue, settings.pools) == (8, 64, ())
    assert settings.workspaces == ""
    assert settings.workspace_root == f"/var/tmp/codex-box-serve-{os.getuid()}"


def test_a_config_without_serve_has_none(home: Path) -> None:
    write(home, '[policy]\nmode = "audit-only"\n')
    assert load_config(home).serve is None


def test_no_config_file_has_no_serve(home: Path) -> None:
    assert load_config(home).serve is None


def test_every_serve_value_is_read(home: Path) -> None:
    write(
        home,
        '[serve]\nmax_concurrent = 3\nmax_queue = 0\nworkspaces = "/srv/ws"\n'
        '[serve.pools]\n"workspace/docker" = 4\n"offline/native" = 8\n"idle/podman" = 0\n',
    )
    settings = load_config(home).serve
    assert settings is not None
    assert settings.max_concurrent == 3 and settings.max_queue == 0
    assert settings.workspaces == "/srv/ws" and settings.workspace_root == "/srv/ws"
    # sorted; a pool of 0 is no pool
    assert settings.pools == (("offline", "native", 8), ("workspace", "docker", 4))


def test_the_bounds_are_inclusive() -> None:
    settings = parse(
        Path("/c.toml"),
        {"max_concurrent": serve.MAX_CONCURRENT, "pools": {"p/podman": serve.MAX_POOL}},
    )
    assert settings.max_concurrent == 256
    assert settings.pools == (("p", "podman", 64),)
    assert parse(Path("/c.toml"), {"max_concurrent": 1}).max_concurrent == 1


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[serve]\nmax_concurent = 8\n", "serve.max_concurent"),
        ("[serve]\nmax_concurrent = 0\n", "serve.max_concurrent"),
        ("[serve]\nmax_concurrent = 257\n", "serve.max_concurrent"),
        ("[serve]\nmax_concurrent = true\n", "serve.max_concurrent"),
        ('[serve]\nmax_concurrent = "8"\n', "serve.max_concurrent"),
        ("[serve]\nmax_concurrent = 8.0\n", "serve.max_concurrent"),
        ("[serve]\nmax_queue = -1\n", "serve.max_queue"),
        ('[serve]\nworkspaces = "relative/dir"\n', "serve.workspaces"),
        ("[serve]\nworkspaces = 7\n", "serve.workspaces"),
        ('[serve]\npools = "offline/native"\n', "serve.pools"),
        ('[serve.pools]\n"offline" = 8\n', "'offline'"),
        ('[serve.pools]\n"/native" = 8\n', "'/native'"),
        ('[serve.pools]\n"offline/kubernetes" = 8\n', "'offline/kubernetes'"),
        ('[serve.pools]\n"offline/native" = -1\n', "serve.pools.offline/native"),
        ('[serve.pools]\n"offline/native" = 65\n', "serve.pools.offline/native"),
        ('[serve.pools]\n"offline/native" = true\n', "serve.pools.offline/native"),
        ('[serve.pools]\n"offline/native" = "8"\n', "serve.pools.offline/native"),
    ],
)
def test_a_bad_serve_value_is_a_config_error_naming_file_and_key(
    home: Path, text: str, key: str
) -> None:
    path = write(home, text)
    with pytest.raises(ConfigError) as info:
        load_config(home)
    assert info.value.exit_code == EXIT_SETUP
    assert str(path) in info.value.message
    assert key in info.value.message
    assert info.value.hint


def test_serve_that_is_not_a_table_is_refused(home: Path) -> None:
    path = write(home, "serve = 8\n")
    with pytest.raises(ConfigError) as info:
        load_config(home)
    assert str(path) in info.value.message and "'serve'" in info.value.message


def test_an_unknown_key_suggests_the_close_one() -> None:
    with pytest.raises(ConfigError) as info:
        parse(Path("/c.toml"), {"max_quue": 1})
    assert "max_queue" in info.value.hint


def test_a_key_with_a_newline_stays_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse(Path("/c.toml"), {"pools": {"offline/nat\nive": 1}})
    assert "\n" not in info.value.message
    with pytest.raises(ConfigError) as info:
        parse(Path("/c.toml"), {"bad\nkey": 1})
    assert "\n" not in info.value.message
