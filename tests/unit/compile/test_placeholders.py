"""placeholders.held: missing protected paths exist (empty) for the run, then go away."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.compile import placeholders
from orchestrator.compile.placeholders import held
from orchestrator.core.errors import SandboxSetupError

NAMES = (".git", ".codex", ".codex-profile")


@pytest.fixture
def ws(workspace: Path) -> str:
    return str(workspace.resolve())


@pytest.fixture
def protected(ws: str) -> tuple[str, ...]:
    return tuple(os.path.join(ws, n) for n in NAMES)


@pytest.fixture
def state_dir(codex_home: Path) -> Path:
    return codex_home / "run"


def present(ws: str) -> set[str]:
    return {n for n in NAMES if os.path.lexists(os.path.join(ws, n))}


def test_missing_placeholders_exist_empty_during_the_run_and_vanish_after(
    ws: str, protected: tuple[str, ...], state_dir: Path
) -> None:
    assert present(ws) == set()
    with held(ws, protected, state_dir=state_dir):
        assert os.path.isdir(f"{ws}/.git") and os.listdir(f"{ws}/.git") == []
        assert os.path.isdir(f"{ws}/.codex") and os.listdir(f"{ws}/.codex") == []
        assert os.path.isfile(f"{ws}/.codex-profile")
        assert os.path.getsize(f"{ws}/.codex-profile") == 0
    assert present(ws) == set()
    assert os.listdir(ws) == []
    assert not list(state_dir.glob("*.placeholders.json")), "the record is gone too"


def test_placeholders_are_removed_even_when_the_run_fails(
    ws: str, protected: tuple[str, ...], state_dir: Path
) -> None:
    with pytest.raises(RuntimeError), held(ws, protected, state_dir=state_dir):
        assert present(ws) == set(NAMES)
        raise RuntimeError("the backend failed")
    assert present(ws) == set()


def test_existing_protected_paths_are_never_touched(
    ws: str, protected: tuple[str, ...], state_dir: Path
) -> None:
    os.mkdir(f"{ws}/.git")
    Path(ws, ".git", "HEAD").write_text("ref: refs/heads/main\n")
    os.mkdir(f"{ws}/.codex")  # empty, but the user's: must survive
    Path(ws, ".codex-profile").write_text("")  # empty, but the user's
    before = {n: os.stat(os.path.join(ws, n)).st_ino for n in NAMES}
    with held(ws, protected, state_dir=state_dir):
        pass
    assert present(ws) == set(NAMES)
    assert {n: os.stat(os.path.join(ws, n)).st_ino for n in NAMES} == before
    assert Path(ws, ".git", "HEAD").read_text() == "ref: refs/heads/main\n"


def test_only_the_missing_ones_are_created_and_removed(
    ws: str, protected: tuple[str, ...], state_dir: Path
) -> None:
    os.mkdir(f"{ws}/.git")
    with held(ws, protected, state_dir=state_dir):
        assert present(ws) == set(NAMES)
    assert present(ws) == {".git"}


def test_content_the_user_puts_in_a_placeholder_during_the_run_is_kept(
    ws: str, protected: tuple[str, ...], state_dir: Path
) -> None:
    with held(ws, protected, state_dir=state_dir):
        Path(ws, ".codex", "config.toml").write_text("model = 'x'\n")
        Path(ws, ".codex-profile").write_text("workspace\n")
    assert Path(ws, ".codex", "config.toml").read_text() == "model = 'x'\n"
    assert Path(ws, ".codex-profile").read_text() == "workspace\n"
    assert not os.path.exists(f"{ws}/.git")
    # Once filled they are the user's: a later run does not remove them either.
    with held(ws, protected, state_dir=state_dir):
        pass
    assert present(ws) == {".codex", ".codex-profile"}


def test_no_protected_paths_means_no_state_at_all(ws: str, state_dir: Path) -> None:
    with held(ws, (), state_dir=state_dir):
        pass
    assert not state_dir.exists()


def test_the_last_run_out_removes_the_placeholders(
    ws: str, protected: tuple[str, ...], state_dir: Path
) -> None:
    """While another run holds the workspace lock, an ending run leaves them in place;
    the record lets a later run clean up."""
    _, users_path, record_path = placeholders._state_files(state_dir, ws)
    other = None
    try:
        with held(ws, protected, state_dir=state_dir):
            other = os.open(users_path, os.O_RDWR)
            fcntl.flock(other, fcntl.LOCK_SH)  # a second run, still going
        assert present(ws) == set(NAMES), "removed while another run still uses them"
        assert record_path.exists()
    finally:
        if other is not None:
            os.close(other)
    with held(ws, protected, state_dir=state_dir):
        assert present(ws) == set(NAMES)
    assert present(ws) == set()
    assert not record_path.exists()


def test_placeholders_left_by_a_killed_run_are_cleaned_by_the_next_one(
    ws: str, protected: tuple[str, ...], state_dir: Path
) -> None:
    _, _, record_path = placeholders._state_files(state_dir, ws)
    state_dir.mkdir(parents=True)
    os.mkdir(f"{ws}/.git")  # as a SIGKILLed run left it
    record_path.write_text(f'["{ws}/.git"]')
    with held(ws, protected[1:], state_dir=state_dir):
        pass
    assert present(ws) == set()


def test_a_failed_setup_removes_the_placeholders_it_already_created(
    ws: str, state_dir: Path
) -> None:
    protected = (f"{ws}/.git", f"{ws}/missing-dir/.codex")
    with (
        pytest.raises(SandboxSetupError, match=r"cannot (create placeholder|reach the directory)"),
        held(ws, protected, state_dir=state_dir),
    ):
        pytest.fail("must not get here")
    assert not os.path.exists(f"{ws}/.git")


class Run:
    """A ``held`` context in a thread, entered and left on request."""

    def __init__(self, ws: str, protected: tuple[str, ...], state_dir: Path) -> None:
        self.entered = threading.Event()
        self.leave = threading.Event()
        self.left = threading.Event()
        self.error: BaseException | None = None

        def body() -> None:
            try:
                with held(ws, protected, state_dir=state_dir):
                    self.entered.set()
                    self.leave.wait(30)
            except BaseException as exc:  # reported by the test
                self.error = exc
            finally:
                self.left.set()

        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()

    def finish(self) -> None:
        self.leave.set()
        assert self.left.wait(30)
        self.thread.join(5)


@pytest.fixture
def runs(ws: str, protected: tuple[str, ...], state_dir: Path) -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.leave.set()
    for run in started:
        run.left.wait(30)


def test_a_second_run_in_the_same_workspace_starts_while_the_first_is_running(
    ws: str, protected: tuple[str, ...], state_dir: Path, runs: list[Run]
) -> None:
    first = Run(ws, protected, state_dir)
    runs.append(first)
    assert first.entered.wait(10)
    second = Run(ws, protected, state_dir)
    runs.append(second)
    started = second.entered.wait(1)
    first.finish()
    second.finish()
    assert started, "the second run could not start until the first one ended"


def test_overlapping_runs_keep_the_placeholders_until_the_last_one_exits(
    ws: str, protected: tuple[str, ...], state_dir: Path, runs: list[Run]
) -> None:
    first = Run(ws, protected, state_dir)
    runs.append(first)
    assert first.entered.wait(10)
    second = Run(ws, protected, state_dir)
    runs.append(second)
    overlapped = second.entered.wait(1)
    first.finish()
    during_second = present(ws)
    second_still_inside = not second.left.is_set()
    second.finish()
    assert first.error is None and second.error is None
    assert overlapped, "the two runs never overlapped"
    assert second_still_inside and during_second == set(NAMES)
    assert present(ws) == set()


def test_runs_in_the_same_workspace_one_after_another_each_get_placeholders(
    ws: str, protected: tuple[str, ...], state_dir: Path
) -> None:
    for _ in range(3):
        with held(ws, protected, state_dir=state_dir):
            assert present(ws) == set(NAMES)
        assert present(ws) == set()


def _killed_holder(ws: str, protected: tuple[str, ...], state_dir: Path) -> None:
    """A run (or a session's keeper) that made the placeholders and was SIGKILLed."""
    import signal
    import subprocess
    import sys

    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from orchestrator.compile.placeholders import held\n"
        f"with held({ws!r}, {protected!r}, state_dir=Path({str(state_dir)!r})):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    child.send_signal(signal.SIGKILL)
    child.wait()


def test_gc_removes_the_placeholders_a_killed_holder_left(
    ws: str, protected: tuple[str, ...], state_dir: Path
) -> None:
    _killed_holder(ws, protected, state_dir)
    assert present(ws) == set(NAMES)  # the control: SIGKILL left them behind
    removed = placeholders.sweep(state_dir)
    assert sorted(removed) == sorted(protected)
    assert present(ws) == set()
    assert not list(state_dir.glob("*.placeholders.json"))


def test_gc_leaves_the_placeholders_of_a_live_run_and_what_the_user_filled(
    ws: str, protected: tuple[str, ...], state_dir: Path
) -> None:
    _killed_holder(ws, protected, state_dir)
    Path(ws, ".codex-profile").write_text("profile: offline\n")  # the user's now
    with held(ws, protected, state_dir=state_dir):  # a live run in the same workspace
        assert placeholders.sweep(state_dir) == []
        assert present(ws) == set(NAMES)
    assert placeholders.sweep(state_dir) == []  # the live run's own exit cleaned up
    assert present(ws) == {".codex-profile"}
