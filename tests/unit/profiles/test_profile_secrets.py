"""``secrets:`` in a user profile: presets, sources, bound hosts, and every refusal —
and the values read at launch (``runner.credentials``) and placeholders made at compile
(``compile.credentials``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.compile.credentials import brokered_secrets as brokered
from orchestrator.compile.credentials import check_passthrough, placeholder
from orchestrator.core.errors import EXIT_SETUP, ConfigError, UsageError
from orchestrator.profiles.secrets import PRESETS
from orchestrator.profiles.store import ProfileStore
from orchestrator.runner.credentials import read_values

WriteProfile = Callable[[str, str], Path]
NET = "extends: workspace-net\n"


def error(store: ProfileStore, name: str) -> str:
    with pytest.raises(ConfigError) as info:
        store.get(name)
    assert info.value.exit_code == EXIT_SETUP and info.value.hint
    return info.value.one_line()


def test_a_preset_gives_hosts_inject_shape_and_reads_the_same_named_variable(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile("gh", NET + "secrets:\n  GH_TOKEN: github\n")
    [binding] = store.get("gh").secrets
    assert binding.name == "GH_TOKEN" and binding.source == ("env", "GH_TOKEN")
    assert binding.hosts == PRESETS["github"].hosts
    assert binding.inject == ("header", "basic-auth")
    made = placeholder(binding)
    assert made.startswith("ghp_") and len(made) == 40 and made[4:].isalnum()
    assert placeholder(binding) != made  # fresh per run


def test_a_custom_secret_with_file_and_command_sources(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile(
        "api",
        NET
        + "secrets:\n"
        + "  API_KEY:\n    from: file:~/.config/api/key\n    hosts: [api.example.com]\n"
        + "    inject: basic-auth\n"
        + '  PASS_KEY:\n    from: command:["pass", "show", "x"]\n    hosts: ["*.example.com"]\n'
        + "  NPM_TOKEN: {preset: npm, from: env:MY_NPM}\n",
    )
    api, passed, npm = store.get("api").secrets
    assert api.source == ("file", "~/.config/api/key") and api.inject == ("basic-auth",)
    assert passed.source == ("command", "pass", "show", "x") and passed.inject == ("header",)
    assert npm.source == ("env", "MY_NPM") and npm.hosts == ("registry.npmjs.org",)
    assert brokered([api])[0].placeholder.startswith("cbx_")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("secrets:\n  GH_TOKEN: gitlab\n", "unknown preset 'gitlab'"),
        ("secrets:\n  HTTPS_PROXY: github\n", "set by codex-box itself"),
        ("secrets:\n  '1X': github\n", "not an environment variable name"),
        ("secrets:\n  K: {hosts: ['*']}\n", "secrets.K.hosts"),
        ("secrets:\n  K: {hosts: ['*.com']}\n", "public suffix"),
        ("secrets:\n  K: {hosts: [a.example], from: 'vault:x'}\n", "is not a source"),
        ("secrets:\n  K: {hosts: [a.example], from: 'file:rel/path'}\n", "not an absolute path"),
        ("secrets:\n  K: {hosts: [a.example], inject: body}\n", "expected header or basic-auth"),
        ("secrets:\n  K: {from: env:K}\n", "names no preset and no hosts"),
        ("secrets:\n  K: {hosts: [a.example], value: x}\n", "unknown key"),
        ("secrets: [GH_TOKEN]\n", "expected a mapping"),
        ("network:\n  allow: [pypi.org]\nsecrets:\n  GH_TOKEN: github\n", "not reachable"),
        ("network:\n  deny: [api.github.com]\nsecrets:\n  GH_TOKEN: github\n", "denied"),
        ("network: none\nsecrets:\n  GH_TOKEN: github\n", "has no network"),
    ],
)
def test_a_bad_declaration_is_one_line_naming_the_key(
    store: ProfileStore, write_profile: WriteProfile, text: str, said: str
) -> None:
    write_profile("bad", NET + text)
    assert said in error(store, "bad")


def test_trusted_may_not_broker_secrets(store: ProfileStore, write_profile: WriteProfile) -> None:
    write_profile("open", "extends: trusted\nsecrets:\n  GH_TOKEN: github\n")
    assert "no sandbox" in error(store, "open")


def test_values_come_from_env_file_and_command_and_errors_never_show_them(
    tmp_path: Path, store: ProfileStore, write_profile: WriteProfile
) -> None:
    (tmp_path / ".config").mkdir()
    (tmp_path / ".config" / "key").write_text("file-secret-value\n")
    (tmp_path / "print.sh").write_text("printf command-secret-value\n")
    write_profile(
        "v",
        NET
        + "secrets:\n  A: {hosts: [a.example], from: 'env:SRC'}\n"
        + "  B: {hosts: [a.example], from: 'file:~/.config/key'}\n"
        + f"  C:\n    hosts: [a.example]\n    from:\n      command: [sh, {tmp_path}/print.sh]\n",
    )
    bindings = store.get("v").secrets
    values = read_values(bindings, environ={"SRC": "env-secret-value"}, home=str(tmp_path))
    assert values == {
        "A": "env-secret-value",
        "B": "file-secret-value",
        "C": "command-secret-value",
    }
    with pytest.raises(ConfigError, match=r"secret A \(from env:SRC\): SRC is not set"):
        read_values(bindings, environ={}, home=str(tmp_path))
    with pytest.raises(ConfigError, match=r"secret B .*cannot read"):
        read_values(bindings[1:], environ={}, home=str(tmp_path / "nowhere"))
    (tmp_path / ".config" / "key").write_text("two\r\nlines")
    with pytest.raises(ConfigError, match="not a token") as info:
        read_values(bindings[1:2], environ={}, home=str(tmp_path))
    assert "two" not in info.value.one_line()


def test_a_failing_command_is_named_by_its_exit_code_not_its_output(
    store: ProfileStore, write_profile: WriteProfile, tmp_path: Path
) -> None:
    write_profile(
        "f",
        NET
        + "secrets:\n  C:\n    hosts: [a.example]\n    from:\n"
        + "      command: [sh, -c, 'echo half-a-$0; exit 3', secret]\n"
        + "  D: {hosts: [a.example], from: {command: [/nonexistent/pass]}}\n",
    )
    c, d = store.get("f").secrets
    with pytest.raises(ConfigError, match="exited 3") as info:
        read_values([c], environ={"PATH": "/usr/bin:/bin"}, home=str(tmp_path))
    assert "half-a-secret" not in info.value.one_line()
    with pytest.raises(ConfigError, match="not found"):
        read_values([d], environ={}, home=str(tmp_path))


def test_env_of_a_brokered_name_or_its_source_is_refused() -> None:
    binding = PRESETS["github"].__class__(
        name="GH_TOKEN", source=("env", "MY_GH"), hosts=("github.com",), inject=("header",)
    )
    check_passthrough([binding], ["OTHER", "X=1"])
    with pytest.raises(UsageError, match="brokered secret"):
        check_passthrough([binding], ["GH_TOKEN=ghp_real"])
    with pytest.raises(UsageError, match="the source of secret GH_TOKEN"):
        check_passthrough([binding], ["MY_GH"])


def test_config_secrets_follow_the_user_to_every_profile_that_can_reach_their_hosts(
    store: ProfileStore, write_profile: WriteProfile, codex_home: Path
) -> None:
    from orchestrator.profiles.secrets import for_profile
    from orchestrator.settings.config import load_config

    (codex_home / "config.toml").write_text(
        'GH = 1\n[secrets]\nGH_TOKEN = "github"\n'
        '[secrets.API_KEY]\nfrom = "env:MY_API"\nhosts = ["api.example.com"]\n'
    )
    config = load_config(codex_home).secrets
    assert [b.name for b in config] == ["GH_TOKEN", "API_KEY"]
    write_profile("pypi-only", NET + "network:\n  allow: [pypi.org, api.example.com]\n")
    write_profile("own", NET + "secrets:\n  API_KEY: {hosts: [other.example], from: env:O}\n")
    names = {
        name: [(b.name, b.source) for b in for_profile(store.get(name), config)]
        for name in ("workspace-net", "offline", "trusted", "pypi-only", "own")
    }
    assert names["workspace-net"] == [
        ("GH_TOKEN", ("env", "GH_TOKEN")),
        ("API_KEY", ("env", "MY_API")),
    ]
    assert names["offline"] == [] and names["trusted"] == []
    assert names["pypi-only"] == [("API_KEY", ("env", "MY_API"))]  # github is not reachable
    assert names["own"] == [("API_KEY", ("env", "O")), ("GH_TOKEN", ("env", "GH_TOKEN"))]


def test_a_bad_config_secret_names_the_file_and_key(codex_home: Path) -> None:
    from orchestrator.settings.config import load_config

    (codex_home / "config.toml").write_text('[secrets]\nGH_TOKEN = "gitlab"\n')
    with pytest.raises(ConfigError, match=r"config.toml: key 'secrets.GH_TOKEN.preset'"):
        load_config(codex_home)


def test_a_fifo_or_device_as_a_source_file_is_refused_without_hanging(
    tmp_path: Path, store: ProfileStore, write_profile: WriteProfile
) -> None:
    import os

    os.mkfifo(tmp_path / "fifo")
    write_profile(
        "odd",
        NET
        + f"secrets:\n  A: {{hosts: [a.example], from: 'file:{tmp_path}/fifo'}}\n"
        + "  B: {hosts: [a.example], from: 'file:/dev/zero'}\n",
    )
    a, b = store.get("odd").secrets
    for binding in (a, b):
        with pytest.raises(ConfigError, match="not a regular file"):
            read_values([binding], environ={}, home=str(tmp_path))
