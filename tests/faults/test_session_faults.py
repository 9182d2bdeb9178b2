"""Faults under a live session: the audit disk fills between two execs, and the engine
dies under a container session. An exec never runs without its decision record, the
error is one line naming what broke, and once the fault is gone the session (or `gc`)
leaves nothing behind and the chain verifies."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import AUDIT_ONLY_CONFIG, small_tmpfs
from tests.integration.session_helpers import (
    Footprint,
    alive,
    exec_in,
    session_starter,
    wait_until,
)

from .conftest import SERVICES, restart, service_pids, verify
from .test_codex_home_faults import fill


@pytest.fixture
def sessions(cli, codex_home: Path) -> Iterator[Callable[..., str]]:
    yield from session_starter(cli, codex_home)


def test_an_exec_after_the_audit_disk_filled_runs_nothing_and_the_session_recovers(
    native_available: None, cli, base_env: dict[str, str], workspace: Path, tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        home = disk / "codex"
        home.mkdir()
        (home / "config.toml").write_text(AUDIT_ONLY_CONFIG)
        env = {"CODEX_HOME": str(home)}
        started = cli("session", "start", "--backend", "native", "--profile", "workspace",
                      env=env)
        assert started.returncode == 0, started.stderr
        sid = started.stdout.strip()
        try:
            assert exec_in(cli, sid, "touch", "before", env=env).returncode == 0
            filler = fill(disk)
            # Long enough that its decision record cannot fit in the log's last page.
            refused = exec_in(cli, sid, "sh", "-c", "touch during", "x" * 5000, env=env)
            assert refused.returncode == 125, refused.stderr
            assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
            assert "No space left on device" in refused.stderr, refused.stderr
            assert not (workspace / "during").exists(), "an exec ran without its record"
            filler.unlink()
            after = exec_in(cli, sid, "touch", "after", env=env)
            assert after.returncode == 0, after.stderr
        finally:
            cli("session", "stop", sid, env=env, timeout=90)
        assert verify(home, {**base_env, **env}).returncode == 0


def test_an_engine_killed_under_a_container_session_fails_its_execs_and_gc_cleans_up(
    engine: str, cli, sessions: Callable[..., str], codex_home: Path, workspace: Path,
    base_env: dict[str, str],
) -> None:
    before = {p.name for p in workspace.iterdir()}
    sid = sessions(engine)
    footprint = Footprint(engine, codex_home, sid, workspace, before)
    assert exec_in(cli, sid, "true").returncode == 0
    for pid in service_pids(engine):
        os.kill(pid, signal.SIGKILL)
    failed = exec_in(cli, sid, "touch", "while-down", timeout=120)
    assert failed.returncode == 125, failed.stderr
    said = failed.stderr.strip().splitlines()
    assert len(said) == 1 and SERVICES[engine][2] in said[0], said
    assert not (workspace / "while-down").exists()

    restart(engine)
    # The keeper may have ended the session itself on seeing its engine gone.
    cli("session", "stop", sid, timeout=120)
    if alive(footprint.keeper_pid):  # a keeper that could not stop cleanly: gc's turn
        os.kill(footprint.keeper_pid, signal.SIGKILL)
    assert cli("gc", timeout=120).returncode == 0
    assert wait_until(lambda: not footprint.leftovers(), 30), footprint.leftovers()
    checked = verify(codex_home, base_env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
