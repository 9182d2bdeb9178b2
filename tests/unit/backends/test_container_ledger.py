"""The run ledger: a run asks the engine for leftovers (a list call) only when a killed
run can have left some, and every container a run makes is covered by a record from
before its create until after its removal."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.containers import common as container
from orchestrator.backends.containers import lifecycle
from orchestrator.backends.containers.ledger import Ledger
from orchestrator.core.errors import SandboxSetupError
from tests.unit.backends.test_linux_translate_golden import fixed_spec

URL = "unix:///run/test-engine.sock"


def dead_owner() -> str:
    """The owner label of a codex-box on this host that is gone (pid 1's start time
    is never this)."""
    return f"{socket.gethostname()}:1:not-its-start-time"


def write_record(directory: Path, name: str, owner: str, *, age_s: float = 0.0) -> Path:
    path = directory / name
    path.write_text(owner)
    if age_s:
        then = time.time() - age_s
        os.utime(path, (then, then))
    return path


def test_an_endpoint_not_seen_since_boot_is_swept_once_then_runs_skip_the_sweep(
    tmp_path: Path,
) -> None:
    ledger = Ledger(URL, base=str(tmp_path))
    assert ledger.must_sweep()  # no directory: first run since boot (or an old codex-box)
    assert ledger.record("run-1") is None  # nowhere to record yet: this run sweeps
    ledger.swept(time.time())
    assert not ledger.must_sweep()
    assert Ledger("unix:///other.sock", base=str(tmp_path)).must_sweep()  # per endpoint


def test_a_record_lives_from_before_create_to_after_removal(tmp_path: Path) -> None:
    ledger = Ledger(URL, base=str(tmp_path))
    ledger.swept(time.time())
    path = ledger.record("run-1")
    assert path is not None and Path(path).read_text() == container.owner_label()
    assert not ledger.must_sweep()  # its owner (this process) is alive
    with pytest.raises(SandboxSetupError, match="cannot record the run"):
        ledger.record("run-1")  # never two runs on one record
    ledger.done(path)
    assert not Path(path).exists()


def test_a_dead_owners_record_makes_runs_sweep_until_a_late_enough_sweep_covers_it(
    tmp_path: Path,
) -> None:
    ledger = Ledger(URL, base=str(tmp_path))
    ledger.swept(time.time())
    assert ledger.dir is not None
    young = write_record(Path(ledger.dir), "killed-just-now", dead_owner())
    assert ledger.must_sweep()
    # Its create may still be in flight at the engine: a sweep now does not forget it.
    ledger.swept(time.time())
    assert young.exists() and ledger.must_sweep()
    ledger.swept(time.time() + ledger_timeout() + 1)
    assert not young.exists() and not ledger.must_sweep()


def test_an_empty_or_unreadable_record_counts_as_a_dead_owner(tmp_path: Path) -> None:
    ledger = Ledger(URL, base=str(tmp_path))
    ledger.swept(time.time())
    assert ledger.dir is not None
    write_record(Path(ledger.dir), "killed-before-writing", "")
    assert ledger.must_sweep()


def test_a_directory_its_group_can_write_is_no_ledger(tmp_path: Path) -> None:
    ledger = Ledger(URL, base=str(tmp_path))
    ledger.swept(time.time())
    assert ledger.dir is not None
    os.chmod(ledger.dir, 0o720)  # group-writable: not private
    assert ledger.must_sweep() and ledger.record("run-1") is None


def ledger_timeout() -> float:
    from orchestrator.backends.containers.ledger import API_TIMEOUT_S

    return API_TIMEOUT_S


# --- the ledger in a run ---------------------------------------------------------------


class FakeOps:
    """``EngineOps`` that records its calls and runs nothing."""

    engine = "Fake"

    def __init__(self, url: str, records: Path, *, removable: bool = True,
                 leftover_stays: bool = False) -> None:
        self.url = url
        self.records = records
        self.removable = removable
        self.leftover_stays = leftover_stays
        self.left: list[str] = []
        self.calls: list[str] = []

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def sweep(self) -> list[str]:
        self.calls.append("sweep")
        if self.leftover_stays:
            self.left.append("codex-box-leftover")
        return []

    def create(self, request: Mapping[str, Any], *, name: str | None = None) -> str:
        self.calls.append("create")
        # The run's record is on disk before the engine has anything to leave behind.
        assert [p.read_text() for p in self.records.rglob("run-0001")] == [
            container.owner_label()
        ]
        return "box"

    def pid(self, box: str) -> int:
        return 0

    def initialize(self, box: str) -> int | None:
        return None

    def attach(self, box: str) -> socket.socket:
        return socket.socketpair()[0]

    def expect_exit(self, box: str) -> None:
        self.calls.append("expect_exit")

    def start(self, box: str) -> None:
        self.calls.append("start")

    def wait(self, box: str, timeout: float) -> int:
        return 0

    def kill(self, box: str, sig: int) -> None:
        pass

    def oom_killed(self, box: str) -> bool:
        return False

    def remove(self, box: str) -> bool:
        self.calls.append("remove")
        return self.removable

    def resize(self, box: str, rows: int, cols: int) -> None:
        pass


class Streams:
    def __init__(self, sock: socket.socket, *, tty: bool) -> None:
        sock.close()

    def start(self) -> None:
        pass

    def finish(self, *, timeout: float = 5.0) -> None:
        pass


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "records"
    root.mkdir(mode=0o700)
    monkeypatch.setattr(lifecycle, "Ledger", lambda url: Ledger(url, base=str(root)))
    monkeypatch.setattr(lifecycle, "AttachedStreams", Streams)
    yield root


def run_once(codex_home: Path, records: Path, **kw: Any) -> FakeOps:
    ops = FakeOps(URL, records, **kw)
    spec = fixed_spec("offline", codex_home=codex_home)
    result = lifecycle.ContainerRun(spec, ops, backend="fake", binds_staged=True).execute({})
    assert result.exit_code == 0
    return ops


def test_runs_sweep_only_when_a_killed_run_can_have_left_something(
    codex_home: Path, records: Path
) -> None:
    first = run_once(codex_home, records)
    assert first.calls == ["sweep", "create", "expect_exit", "start", "remove"]
    second = run_once(codex_home, records)
    assert second.calls == ["create", "expect_exit", "start", "remove"]
    [endpoint] = records.iterdir()
    assert list(endpoint.iterdir()) == []  # every record removed with its container
    write_record(endpoint, "killed", dead_owner(), age_s=ledger_timeout() + 1)
    assert run_once(codex_home, records).calls[0] == "sweep"
    assert run_once(codex_home, records).calls[0] == "create"  # that sweep covered it


def test_a_leftover_a_sweep_could_not_remove_keeps_the_next_runs_sweeping(
    codex_home: Path, records: Path
) -> None:
    run_once(codex_home, records)
    [endpoint] = records.iterdir()
    write_record(endpoint, "killed", dead_owner(), age_s=ledger_timeout() + 1)
    assert run_once(codex_home, records, leftover_stays=True).calls[0] == "sweep"
    assert run_once(codex_home, records).calls[0] == "sweep"  # tried again, removed now
    assert run_once(codex_home, records).calls[0] == "create"


def test_a_container_that_could_not_be_removed_keeps_its_record(
    codex_home: Path, records: Path
) -> None:
    run_once(codex_home, records)
    run_once(codex_home, records, removable=False)
    [endpoint] = records.iterdir()
    [record] = endpoint.iterdir()
    assert record.read_text() == container.owner_label()  # swept once this process is gone


def test_a_run_whose_record_cannot_be_written_creates_nothing(
    codex_home: Path, records: Path
) -> None:
    run_once(codex_home, records)
    [endpoint] = records.iterdir()
    (endpoint / "run-0001").mkdir()  # the run's record name, taken
    ops = FakeOps(URL, records)
    spec = fixed_spec("offline", codex_home=codex_home)
    with pytest.raises(SandboxSetupError, match="cannot record the run"):
        lifecycle.ContainerRun(spec, ops, backend="fake").execute({})
    assert "create" not in ops.calls



def test_one_engine_has_one_ledger_whatever_its_socket_is_called(tmp_path: Path) -> None:
    real = tmp_path / "var" / "run" / "engine.sock"
    real.parent.mkdir(parents=True)
    real.touch()
    (tmp_path / "run").symlink_to(real.parent)  # /run -> /var/run, as on most hosts
    base = str(tmp_path / "ledgers")
    one = Ledger(f"unix://{real}", base)
    other = Ledger(f"unix://{tmp_path / 'run' / 'engine.sock'}", base)
    assert one.dir == other.dir
    assert Ledger("tcp://10.0.0.5:2375", base).dir != one.dir
