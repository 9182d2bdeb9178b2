"""What a server made, on record so nothing outlives it: the workspaces root, the
records written before the thing exists, forget/sweep (never following a planted
symlink, never removing what we did not name), and the one-server lock."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.core.errors import CodexBoxError, ConfigError
from orchestrator.runner import owned

needs_root = pytest.mark.skipif(os.getuid() != 0, reason="chown to another uid needs root")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "codex-home"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return owned.workspace_root(str(tmp_path / "workspaces"))


# --- workspace_root -----------------------------------------------------------------------


def test_the_workspaces_root_is_made_0700(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "workspaces"
    made = owned.workspace_root(str(path))
    assert made == path
    info = os.lstat(path)
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700


def test_an_existing_private_root_is_accepted_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "ws"
    path.mkdir(mode=0o755)
    path.chmod(0o755)
    assert owned.workspace_root(str(path)) == path
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o755


def test_a_symlinked_root_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(ConfigError) as info:
        owned.workspace_root(str(link))
    assert str(link) in info.value.message


def test_a_file_as_root_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(ConfigError):
        owned.workspace_root(str(path))


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777, 0o1777])
def test_a_root_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "shared"
    path.mkdir()
    path.chmod(mode)
    with pytest.raises(ConfigError) as info:
        owned.workspace_root(str(path))
    assert str(path) in info.value.message


@needs_root
def test_a_root_of_another_uid_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "theirs"
    path.mkdir(mode=0o700)
    os.chown(path, 65534, 65534)
    with pytest.raises(ConfigError):
        owned.workspace_root(str(path))


# --- records, forget, sweep ---------------------------------------------------------------


def records(home: Path) -> list[Path]:
    directory = owned.state_dir(home) / "owned"
    return sorted(directory.glob("*")) if directory.is_dir() else []


def test_a_new_workspace_is_recorded_before_it_exists(
    home: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    real_write = owned._write

    def spying(home_: Path, name: str, data: dict[str, object]) -> Path:
        seen.append(os.path.lexists(str(data["workspace"])))
        return real_write(home_, name, data)

    monkeypatch.setattr(owned, "_write", spying)
    record, workspace = owned.new_workspace(home, root, kind="pool")
    assert seen == [False]
    assert json.loads(record.read_text()) == {
        "workspace": workspace, "session": None, "name": None
    }
    assert os.path.dirname(workspace) == str(root)
    assert owned._WORKSPACE_NAME.fullmatch(os.path.basename(workspace))
    info = os.lstat(workspace)
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
    assert record.parent == owned.state_dir(home) / "owned"
    assert stat.S_IMODE(os.lstat(record.parent).st_mode) == 0o700


def test_two_workspaces_have_different_names(home: Path, root: Path) -> None:
    _, one = owned.new_workspace(home, root, kind="scratch")
    _, two = owned.new_workspace(home, root, kind="scratch")
    assert one != two and os.path.basename(one).startswith("scratch-")


def test_forget_removes_the_workspace_and_record_but_not_a_symlinks_target(
    home: Path, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    record, workspace = owned.new_workspace(home, root, kind="pool")
    (Path(workspace) / "sub").mkdir()
    (Path(workspace) / "sub" / "f").write_text("x")
    (Path(workspace) / "escape").symlink_to(outside)
    (Path(workspace) / "sub" / "escape-file").symlink_to(outside / "keep.txt")
    owned.forget(record)
    assert not os.path.lexists(workspace)
    assert not record.exists()
    assert (outside / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "name", ["project", "pool-0123456789aB", "pool-0123456789a", "tmp-0123456789ab", "pool-"]
)
def test_forget_leaves_a_directory_not_named_by_us_alone(
    home: Path, tmp_path: Path, name: str
) -> None:
    victim = tmp_path / name
    victim.mkdir()
    (victim / "data").write_text("keep")
    record = owned._write(home, "pool-forged", {"workspace": str(victim), "session": None})
    owned.forget(record)
    assert (victim / "data").read_text() == "keep"
    assert not record.exists()


def test_forget_of_a_record_that_is_not_json_removes_only_the_record(home: Path) -> None:
    record = owned._write(home, "junk", {})
    record.write_text("not json")
    owned.forget(record)
    assert not record.exists()
    owned.forget(record)  # already gone: nothing to do


def test_note_session_keeps_the_workspace(home: Path, root: Path) -> None:
    record, workspace = owned.new_workspace(home, root, kind="pool")
    owned.note_session(record, "0123456789ab")
    assert json.loads(record.read_text()) == {
        "workspace": workspace, "session": "0123456789ab", "name": None
    }
    assert not record.with_suffix(".tmp").exists()


def test_sweep_removes_every_workspace_and_record_on_file(home: Path, root: Path) -> None:
    pool_record, pool_ws = owned.new_workspace(home, root, kind="pool")
    (Path(pool_ws) / "out.txt").write_text("left over")
    _, scratch_ws = owned.new_workspace(home, root, kind="scratch")
    session_record = owned.new_session_record(home)
    owned.note_session(session_record, "0123456789ab")  # no such session: nothing to stop
    lines = owned.sweep(home)
    assert not os.path.lexists(pool_ws) and not os.path.lexists(scratch_ws)
    assert records(home) == []
    assert sorted(lines) == sorted(
        f"serve: removed {stem}"
        for stem in (pool_record.stem, Path(scratch_ws).name, session_record.stem)
    )
    assert not any("stopped session" in line for line in lines)
    assert root.is_dir()


def test_sweep_with_nothing_on_record_does_nothing(home: Path) -> None:
    assert owned.sweep(home) == []


# --- the lock -----------------------------------------------------------------------------


def test_a_second_server_on_the_same_home_is_refused(home: Path) -> None:
    fd = owned.hold_lock(home)
    try:
        assert (owned.state_dir(home) / owned.LOCK_NAME).read_text() == f"{os.getpid()}\n"
        with pytest.raises(CodexBoxError) as info:
            owned.hold_lock(home)
        assert "already serves" in info.value.message and str(home) in info.value.message
    finally:
        os.close(fd)
    again = owned.hold_lock(home)  # free once the first fd is closed
    os.close(again)


def test_server_running_follows_the_lock(home: Path) -> None:
    assert owned.server_running(home) is False  # no lock file yet
    fd = owned.hold_lock(home)
    try:
        assert owned.server_running(home) is True
    finally:
        os.close(fd)
    assert owned.server_running(home) is False


def test_the_state_directory_is_private(home: Path) -> None:
    os.close(owned.hold_lock(home))
    assert stat.S_IMODE(os.lstat(owned.state_dir(home)).st_mode) == 0o700
    lock = owned.state_dir(home) / owned.LOCK_NAME
    assert stat.S_IMODE(os.lstat(lock).st_mode) == 0o600


def test_sweep_stops_a_session_whose_start_the_server_did_not_live_to_note(
    home: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server SIGKILLed while a pool's (or a named) session started left a record
    without the session's id: the session is found by its name."""
    pool, _ = owned.new_workspace(home, root, kind="pool")
    owned.new_session_record(home, "mine")
    nameless = owned.new_session_record(home)
    live = [
        (SimpleNamespace(id="a" * 12, name=pool.stem), True),
        (SimpleNamespace(id="b" * 12, name="mine"), True),
        (SimpleNamespace(id="c" * 12, name="other"), True),
        (SimpleNamespace(id="d" * 12, name=nameless.stem), False),  # dead: not stopped
    ]
    monkeypatch.setattr(owned.store, "all_sessions", lambda _home: live)
    stopped: list[str] = []
    monkeypatch.setattr(owned, "_stop", lambda _home, sid: stopped.append(sid) or True)
    owned.sweep(home)
    assert sorted(stopped) == ["a" * 12, "b" * 12]
    assert records(home) == []
