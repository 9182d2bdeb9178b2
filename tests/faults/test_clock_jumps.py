"""The wall clock jumps a day, forward or back, during a run and around a grant.

Timeouts are measured on the monotonic clock, so a jump neither ends a run early nor
lets it run forever; a grant's expiry is wall-clock by design (a jump forward expires
it, a jump back makes it "created in the future" — both ignored, fail closed, and
recorded); `audit --since` selects by the time each record was stamped with, and the
chain (seq, prev) verifies whatever the stamps say.

The jump is made for codex-box alone by an LD_PRELOAD shim (wallclock_shim.c): setting
the machine's clock would move every other process's too. Each test first proves the
jump reached codex-box (its records' timestamps moved by the day).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import CODEX_BOX

from .conftest import records, verify, wait_for_decision

DAY = 86_400
SHIM_SOURCE = Path(__file__).with_name("wallclock_shim.c")


@pytest.fixture(scope="session")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = tmp_path_factory.mktemp("shim") / "wallclock_shim.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(built),
                    str(SHIM_SOURCE), "-ldl"], check=True, capture_output=True, timeout=120)
    return built


@pytest.fixture
def jumped(shim: Path, tmp_path: Path, base_env: dict[str, str]
           ) -> tuple[dict[str, str], Callable[[int], None]]:
    """(the environment of a codex-box whose wall clock the test moves, move(seconds))."""
    offset = tmp_path / "clock-offset"
    offset.write_text("0")
    env = {**base_env, "LD_PRELOAD": str(shim), "CODEX_BOX_TEST_CLOCK_FILE": str(offset)}
    return env, lambda seconds: offset.write_text(str(seconds))


def stamp(record: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))


@pytest.mark.parametrize("jump", [DAY, -DAY], ids=["forward", "back"])
def test_a_jump_during_a_run_neither_ends_its_timeout_early_nor_late(
    backend: str, jump: int, jumped: tuple[dict[str, str], Callable[[int], None]],
    workspace: Path, codex_home: Path,
) -> None:
    env, move = jumped
    started = time.monotonic()
    proc = subprocess.Popen(
        [CODEX_BOX, "run", "--backend", backend, "--profile", "offline", "--timeout", "5",
         "--", "sleep", "60"],
        cwd=workspace, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )
    wait_for_decision(codex_home, proc)
    move(jump)
    # A wall-clock deadline would end a forward jump at once and a backward one never.
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - started
    assert proc.returncode == 124, err
    assert took >= 4.5, f"the timeout fired after {took:.1f}s, not 5s: the wall clock moved it"

    decided, ended = (next(r for r in records(codex_home) if r.get("phase") == phase)
                      for phase in ("decided", "ended"))
    moved = (stamp(ended) - stamp(decided)).total_seconds()
    assert abs(moved - jump) < 120, f"the jump never reached codex-box ({moved:.0f}s)"
    checked = verify(codex_home, env)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(("jump", "why"), [(DAY, "expired"), (-DAY, "created in the future")],
                         ids=["forward", "back"])
def test_a_grant_is_ignored_and_recorded_when_the_clock_jumps_past_it(
    native_available: None, jump: int, why: str,
    jumped: tuple[dict[str, str], Callable[[int], None]], workspace: Path, codex_home: Path,
) -> None:
    env, move = jumped
    granted = subprocess.run(
        [CODEX_BOX, "elevate", "--to", "workspace", "--for", "2h", "--reason", "faults",
         "--yes"], cwd=workspace, env=env, capture_output=True, text=True, timeout=60)
    assert granted.returncode == 0, granted.stderr

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CODEX_BOX, "run", "--backend", "native", "--", "sh", "-c", "touch wrote"],
            cwd=workspace, env=env, capture_output=True, text=True, timeout=60)

    move(jump)
    ran = run()
    assert why in ran.stderr, ran.stderr
    assert not (workspace / "wrote").exists(), "an expired grant still widened the run"
    ignored = [r for r in records(codex_home) if r.get("operation") == "elevation"
               and r.get("decision") == "denied"]
    assert ignored and why in str(ignored[-1]), ignored

    move(0)  # the clock back where it was: the same grant applies again
    ran = run()
    assert ran.returncode == 0, ran.stderr
    assert (workspace / "wrote").exists()
    assert verify(codex_home, env).returncode == 0


def test_since_selects_by_each_records_stamp_and_the_chain_verifies(
    native_available: None, jumped: tuple[dict[str, str], Callable[[int], None]],
    workspace: Path, codex_home: Path, base_env: dict[str, str],
) -> None:
    env, move = jumped
    for jump in (0, -DAY, DAY, 0):
        move(jump)
        ran = subprocess.run([CODEX_BOX, "run", "--backend", "native", "--profile",
                              "offline", "--", "echo", f"at{jump}"], cwd=workspace, env=env,
                             capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
    stamps = [stamp(r) for r in records(codex_home) if r.get("phase") == "ended"]
    assert len(stamps) == 4 and stamps[1] < stamps[0] - timedelta(hours=23) < stamps[2]

    # Without the shim: the real clock. A day-old stamp is not "since 1h"; the others are.
    listed = subprocess.run([CODEX_BOX, "audit", "--since", "1h", "--operation",
                             "command_exec", "--json"], env=base_env, capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "at-86400" not in listed.stdout
    assert all(f"at{j}" in listed.stdout for j in (0, DAY))
    checked = verify(codex_home, base_env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
