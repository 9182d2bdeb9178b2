"""filesystem.deny_read: the default list, what user profiles and .codex-profile files
may do with it, widening, expansion at compile, and the container translation."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.backends.containers import common
from orchestrator.compile import deny_read
from orchestrator.compile.spec import Request, compile_spec
from orchestrator.core.errors import ConfigError, Refused, SandboxSetupError
from orchestrator.core.profile import DEFAULT_DENY_READ
from orchestrator.profiles.definition import DefinitionParser
from orchestrator.profiles.parser import parse_yaml
from orchestrator.profiles.store import ProfileStore
from orchestrator.profiles.widening import wider

WriteProfile = Callable[[str, str], Path]
SANDBOXED = ("offline", "net-read-only", "workspace", "workspace-net")
KEY = "filesystem.deny_read"


def define(store: ProfileStore, directory: Path, text: str):  # type: ignore[no-untyped-def]
    path = directory / ".codex-profile"
    path.write_text(text)
    return DefinitionParser(path, text, parse_yaml(path, text), store).parse()


# --- the default list and the parsers ----------------------------------------------------


@pytest.mark.parametrize("name", SANDBOXED)
def test_every_sandboxed_built_in_denies_the_default_credential_stores(
    store: ProfileStore, name: str
) -> None:
    assert store.get(name).deny_read == DEFAULT_DENY_READ


def test_trusted_denies_nothing(store: ProfileStore) -> None:
    assert store.get("trusted").deny_read == ()


def test_the_default_list_names_the_well_known_credential_stores() -> None:
    for entry in ("~/.ssh", "~/.aws", "~/.netrc", "~/.docker/config.json", "/etc/shadow"):
        assert entry in DEFAULT_DENY_READ


def test_a_user_profile_adds_and_removes_entries(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile(
        "mine",
        """
        extends: workspace
        filesystem:
          deny_read: ["**/.env", "~/.config/*/token", "!~/.npmrc"]
        """,
    )
    got = store.get("mine").deny_read
    assert "**/.env" in got and "~/.config/*/token" in got
    assert "~/.npmrc" not in got
    assert set(DEFAULT_DENY_READ) - {"~/.npmrc"} <= set(got)


def test_removing_an_entry_the_base_does_not_list_is_refused_naming_file_line_key(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    path = write_profile("mine", "extends: workspace\nfilesystem:\n  deny_read: ['!~/.nettrc']\n")
    with pytest.raises(ConfigError) as info:
        store.get("mine")
    message = str(info.value)
    assert f"{path}:3: key '{KEY}'" in message and "~/.nettrc" in message
    assert "~/.netrc" in (info.value.hint or "")  # did you mean


@pytest.mark.parametrize(
    "entry",
    ["~", "/", "~root/.ssh", "~/../etc", "a/./b", "~/.ssh/", "foo**/x", "**", "", "a\tb", "//x"],
)
def test_a_bad_entry_is_refused_with_a_one_line_error_and_a_fix(
    store: ProfileStore, write_profile: WriteProfile, entry: str
) -> None:
    write_profile("bad", f"extends: offline\nfilesystem:\n  deny_read: [{json.dumps(entry)}]\n")
    with pytest.raises(ConfigError) as info:
        store.get("bad")
    assert f"key '{KEY}'" in str(info.value) and "\n" not in str(info.value)
    assert info.value.hint


def test_a_codex_profile_may_add_entries(store: ProfileStore, tmp_path: Path) -> None:
    profile = define(store, tmp_path, "extends: workspace\nfilesystem:\n  deny_read: ['**/.env']\n")
    assert profile.deny_read == (*DEFAULT_DENY_READ, "**/.env")


def test_a_codex_profile_may_not_remove_an_entry(store: ProfileStore, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        define(store, tmp_path, "extends: workspace\nfilesystem:\n  deny_read: ['!~/.ssh']\n")
    assert "may only add" in str(info.value) and f"key '{KEY}'" in str(info.value)


def test_removing_an_entry_is_wider_and_adding_one_is_not(
    store: ProfileStore, write_profile: WriteProfile
) -> None:
    write_profile("loose", "extends: workspace\nfilesystem:\n  deny_read: ['!~/.ssh']\n")
    write_profile("tight", "extends: workspace\nfilesystem:\n  deny_read: ['**/.env']\n")
    base = store.get("workspace")
    assert wider(base, store.get("loose")) == (f"{KEY} no longer denies ~/.ssh",)
    assert wider(base, store.get("tight")) == ()


# --- expansion at compile ------------------------------------------------------------------


def expand(entries: tuple[str, ...], home: Path, *roots: Path) -> set[str]:
    return set(
        deny_read.expand(entries, home=str(home), roots=[str(r) for r in roots], profile="p")
    )


def test_home_entries_expand_and_missing_ones_are_skipped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".netrc").write_text("machine x")
    got = expand(("~/.ssh", "~/.netrc", "~/.aws", "/nonexistent/x"), home, tmp_path / "ws")
    assert got == {str(home / ".ssh"), str(home / ".netrc")}


def test_globs_expand_in_home_and_relative_ones_inside_every_root(tmp_path: Path) -> None:
    home, ws, extra = tmp_path / "home", tmp_path / "ws", tmp_path / "cache"
    for d in (home / ".config" / "a", home / ".config" / "b", ws / "x" / "y", extra):
        d.mkdir(parents=True)
    (home / ".config" / "a" / "token").write_text("t")
    for env in (ws / ".env", ws / "x" / "y" / ".env", extra / ".env"):
        env.write_text("SECRET=1")
    got = expand(("~/.config/*/token", "**/.env"), home, ws, extra)
    assert got == {
        str(home / ".config" / "a" / "token"),
        str(ws / ".env"),
        str(ws / "x" / "y" / ".env"),
        str(extra / ".env"),
    }


def test_a_symlinked_entry_masks_its_target(tmp_path: Path) -> None:
    home, real = tmp_path / "home", tmp_path / "keys"
    home.mkdir()
    real.mkdir()
    (home / ".ssh").symlink_to(real)
    assert expand(("~/.ssh",), home, tmp_path / "ws") == {str(real)}


def test_a_link_to_dev_null_is_not_masked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").symlink_to("/dev/null")
    assert expand(("~/.netrc",), home, tmp_path / "ws") == set()


def test_a_glob_that_would_walk_too_much_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    for i in range(30):
        (ws / f"d{i}").mkdir(parents=True)
    monkeypatch.setattr(deny_read, "MAX_VISITED", 10)
    with pytest.raises(ConfigError) as info:
        expand(("**/.env",), tmp_path, ws)
    assert "'**/.env'" in str(info.value) and "10" in str(info.value)


def test_too_many_matches_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    for i in range(5):
        (ws / f"k{i}.pem").write_text("")
    monkeypatch.setattr(deny_read, "MAX_MATCHES", 3)
    with pytest.raises(ConfigError):
        expand(("*.pem",), tmp_path, ws)


def test_an_entry_that_would_hide_the_workspace_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ws = home / ".aws" / "proj"
    ws.mkdir(parents=True)
    with pytest.raises(ConfigError) as info:
        expand(("~/.aws",), home, ws)
    assert "would hide" in str(info.value)


def test_compile_fills_the_spec_and_trusted_gets_nothing(
    store: ProfileStore, make_request: Callable[..., Request], home: Path, codex_home: Path
) -> None:
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("KEY")
    spec = compile_spec(store.get("workspace"), make_request())
    assert str(home / ".ssh") in spec.deny_read
    assert str(codex_home / "grants") in spec.hidden_paths  # its keys, whatever the list
    trusted = compile_spec(store.get("trusted"), make_request())
    assert trusted.deny_read == ()


def test_a_user_profile_extending_trusted_with_entries_is_refused(
    store: ProfileStore, write_profile: WriteProfile, make_request: Callable[..., Request]
) -> None:
    write_profile("t", "extends: trusted\nfilesystem:\n  deny_read: ['~/.ssh']\n")
    with pytest.raises((ConfigError, Refused)):
        compile_spec(store.get("t"), make_request())


# --- containers: masks inside what is bound ------------------------------------------------


def test_containers_mask_files_and_directories_inside_the_binds_only(
    store: ProfileStore, make_request: Callable[..., Request], workspace: Path, home: Path
) -> None:
    (workspace / ".env").write_text("SECRET=1")
    (workspace / "keys").mkdir()
    (home / ".ssh").mkdir()  # outside every bind: the container never sees it
    spec = compile_spec(store.get("workspace"), make_request())
    spec = dataclasses.replace(
        spec, deny_read=(*spec.deny_read, str(workspace / ".env"), str(workspace / "keys"))
    )
    binds = common.binds(spec)
    assert common.Bind(common.EMPTY_FILE, str(workspace / ".env"), read_only=True) in binds
    assert [b for b in binds if b.target == str(workspace / ".env")] == [
        common.Bind(common.EMPTY_FILE, str(workspace / ".env"), read_only=True)
    ], "the mask replaces the protected bind: one mount per target"
    assert common.Bind(common.empty_dir(), str(workspace / "keys"), read_only=True) in binds
    assert common.tmpfs(spec) == {"/tmp": common.TMP_OPTIONS}  # never a tmpfs: tmpcopyup
    assert not any(b.target.startswith(str(home / ".ssh")) for b in binds)


def test_the_empty_directory_is_made_and_refused_when_someone_filled_it(
    store: ProfileStore,
    make_request: Callable[..., Request],
    workspace: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (workspace / "keys").mkdir()
    spec = compile_spec(store.get("workspace"), make_request())
    spec = dataclasses.replace(spec, deny_read=(str(workspace / "keys"),))
    empty = tmp_path / "empty"
    monkeypatch.setattr(common, "empty_dir", lambda: str(empty))
    common.ensure_empty_dir(spec)
    assert empty.is_dir() and oct(empty.stat().st_mode & 0o777) == oct(0o555)
    empty.chmod(0o755)
    (empty / "planted").write_text("x")
    with pytest.raises(SandboxSetupError, match=r"not empty|mode"):
        common.ensure_empty_dir(spec)


def test_containers_mask_nothing_for_trusted(
    store: ProfileStore, make_request: Callable[..., Request], workspace: Path
) -> None:
    (workspace / ".env").write_text("SECRET=1")
    spec = compile_spec(store.get("trusted"), make_request())
    spec = dataclasses.replace(spec, deny_read=(str(workspace / ".env"),))
    assert common.masks(spec) == ([], [])
