"""CODEX_HOME's disk fills during a run, or CODEX_HOME turns read-only between runs.

No launch without its decision record: while the audit log cannot be written nothing
starts, with one line naming the log and its filesystem. A record that could not be
written is never half on disk: once there is space again the chain verifies and every
line is a whole record. (Root only: the disk is a small tmpfs, the read-only CODEX_HOME a
read-only bind mount, both mounted by the test — CI runs as root.)
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import AUDIT_ONLY_CONFIG, CODEX_BOX, small_tmpfs

from .conftest import verify, wait_for_decision

# An argument that makes the end record longer than a page (its command line is cut at
# 4096 characters): the record cannot fit in the slack of the log's last page, so a full
# disk really refuses it.
PADDING = "x" * 5000


def fill(disk: Path) -> Path:
    """Write zeros until the filesystem is full; the file that holds them."""
    filler = disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as out:
        while True:
            out.write(b"\0" * 4096)
            out.flush()
    return filler


def whole_lines(log: Path) -> None:
    for number, line in enumerate(log.read_text().splitlines(), 1):
        assert isinstance(json.loads(line), dict), f"line {number} is not a whole record"


@pytest.fixture
def home_on_small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        home = disk / "codex"
        home.mkdir()
        (home / "config.toml").write_text(AUDIT_ONLY_CONFIG)
        yield home


def run(env: dict[str, str], workspace: Path, *argv: str, profile: str = "workspace",
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CODEX_BOX, "run", "--backend", "native", "--profile", profile,
                           "--", *argv], cwd=workspace, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_audit_disk_filling_during_a_run_loses_no_record_and_starts_nothing_more(
    native_available: None, home_on_small_disk: Path, base_env: dict[str, str],
    workspace: Path,
) -> None:
    home = home_on_small_disk
    env = {**base_env, "CODEX_HOME": str(home)}
    proc = subprocess.Popen(
        # offline: no placeholders, so no state file of CODEX_HOME's is freed at the end
        # (its page would make room for the end record).
        [CODEX_BOX, "run", "--backend", "native", "--profile", "offline", "--",
         "sh", "-c", "sleep 2; echo first", PADDING],
        cwd=workspace, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    wait_for_decision(home, proc)
    filler = fill(home.parent)  # the disk fills while the command runs
    out, err = proc.communicate(timeout=60)
    # The command ran (its decision is on disk); its end could not be recorded: said.
    assert out == "first\n"
    assert "the command ran and exited 0" in err, err
    assert proc.returncode == 125, err
    assert "audit.log" in err and "No space left on device" in err, err
    assert str(home.parent) in err, f"the error does not name the full filesystem: {err}"

    refused = run(env, workspace, "touch", "second")
    assert refused.returncode == 125, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "No space left on device" in refused.stderr and str(home.parent) in refused.stderr
    assert not (workspace / "second").exists(), "a command ran without its audit record"

    filler.unlink()
    whole_lines(home / "audit.log")
    checked = verify(home, env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    third = run(env, workspace, "touch", "third")
    assert third.returncode == 0, third.stderr
    assert (workspace / "third").exists()
    assert verify(home, env).returncode == 0


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root (CI runs as root)")
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_codex_home_turning_read_only_between_runs_starts_nothing(
    native_available: None, codex_home: Path, base_env: dict[str, str], workspace: Path,
) -> None:
    first = run(base_env, workspace, "touch", "first")
    assert first.returncode == 0, first.stderr
    with read_only(codex_home):
        refused = run(base_env, workspace, "touch", "second")
        assert refused.returncode == 125, refused.stderr
        said = refused.stderr.strip().splitlines()
        assert len(said) == 1 and str(codex_home) in said[0], said
        assert "Read-only file system" in said[0], said
        assert not (workspace / "second").exists(), "a command ran without its audit record"
    whole_lines(codex_home / "audit.log")
    assert verify(codex_home, base_env).returncode == 0
    third = run(base_env, workspace, "touch", "third")
    assert third.returncode == 0, third.stderr
