"""The audit log's fast path keeps every guarantee: the fixed-width head, the tail
remembered between appends (and forgotten when anyone else touched the log), batches,
the fsync outside the lock (group commit) and what a failed one leaves, descriptors
kept open across threads, forks and a replaced lock file."""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.audit.chain import (
    HEAD_NAME,
    HEAD_WIDTH,
    last_line,
    last_record,
    line_hash,
    log_files,
    read_head,
)
from orchestrator.audit.log import AuditLog, Sanitizer, now_utc
from orchestrator.audit.verify import verify
from orchestrator.core.errors import AuditError
from tests.unit.audit.test_audit_chain import record

NO_SANITIZING = Sanitizer(user="", home="")
REPO = Path(__file__).parents[3]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "codex" / "audit.log"


def new_log(path: Path, **kw: Any) -> AuditLog:
    return AuditLog(path, sanitizer=NO_SANITIZING, **kw)


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_all(path: Path, count: int) -> None:
    log = new_log(path)
    for i in range(count):
        log.append(record(i))


def assert_chained(path: Path, count: int) -> None:
    report = verify(path)
    assert report.ok and not report.torn, (report.problems, report.torn)
    assert report.records == count


# --- audit.head ------------------------------------------------------------------------


def test_the_head_is_one_padded_line_that_verify_reads(path: Path) -> None:
    log = new_log(path)
    for i in range(12):  # seq 9 → 10: a longer number must leave no stale byte
        log.append(record(i))
    head = path.with_name(HEAD_NAME).read_bytes()
    assert len(head) == HEAD_WIDTH and head.endswith(b" \n")
    last = path.read_bytes().splitlines()[-1]
    assert read_head(path) == (12, line_hash(last))
    assert json.loads(head) == {"seq": 12, "hash": line_hash(last)}  # plain JSON readers too
    assert_chained(path, 12)
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
    assert "records were cut off the end" in verify(path).problems[0]


@pytest.mark.parametrize(
    "old",
    [b'{"seq": 1, "hash": "x"}\n', b'{"seq": 1, "hash": "x"}' + b" " * 300 + b"\n", b"junk"],
    ids=["unpadded-older-format", "longer-than-the-width", "unreadable"],
)
def test_a_head_not_written_in_place_is_overwritten_whole(path: Path, old: bytes) -> None:
    new_log(path).append(record(1))
    path.with_name(HEAD_NAME).write_bytes(old)
    new_log(path).append(record(2))
    assert len(path.with_name(HEAD_NAME).read_bytes()) == HEAD_WIDTH
    assert read_head(path) == (2, line_hash(path.read_bytes().splitlines()[-1]))
    assert_chained(path, 2)


def test_records_cut_off_the_end_stay_reported_after_the_next_append(path: Path) -> None:
    log = new_log(path)
    for i in range(6):
        log.append(record(i))
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))  # record 6 cut off …
    log.append(record(99))  # … and a new record 6 chained to 5 in its place
    assert rows(path)[-1]["seq"] == 6
    report = verify(path)
    assert not report.ok and "the last record (seq 6) was changed" in report.problems[0]


# --- the remembered tail ----------------------------------------------------------------


def test_two_instances_on_one_log_interleaving_keep_one_chain(path: Path) -> None:
    first, second = new_log(path), new_log(path)
    for i in range(6):
        (first if i % 3 else second).append(record(i))  # runs of two: a tail seen twice
    assert [r["seq"] for r in rows(path)] == [1, 2, 3, 4, 5, 6]
    assert [r["target"] for r in rows(path)] == [f"make test-{i}" for i in range(6)]
    assert_chained(path, 6)


def test_an_in_place_edit_of_the_last_line_is_not_chained_over(path: Path) -> None:
    log = new_log(path)
    log.append(record(1, reason="keep"))
    text = path.read_text()
    path.write_text(text.replace("keep", "KEEP"))  # same size, same file
    log.append(record(2))
    report = verify(path)
    assert not report.ok and "the record before it was changed" in report.problems[0]


def test_a_torn_line_left_by_another_writer_is_noticed(path: Path) -> None:
    log = new_log(path)
    log.append(record(1))
    with path.open("ab") as handle:
        handle.write(b'{"timestamp": "2026-11-28T00:00:00.000Z", "seq": 2, "oper')
    log.append(record(2))
    assert json.loads(path.read_text().splitlines()[-1])["seq"] == 2
    report = verify(path)
    assert report.ok and report.records == 2 and len(report.torn) == 1


@pytest.mark.parametrize(
    ("ending", "quick"),
    [(b"", True), (b'{"seq": 9}\n', True), (b'{"seq": 9, "trunc', False),
     (b"not json\n", False), (b"[1]\n", False), (b'{"seq": true}\n', False),
     (b'{"seq": 9, "x": "' + b"y" * 5000 + b'"}\n', False)],
    ids=["whole-ours", "whole-other", "torn", "unparseable", "not-an-object", "no-int-seq",
         "longer-than-the-read"],
)  # fmt: skip
def test_the_quick_tail_read_agrees_with_the_full_one(
    path: Path, ending: bytes, quick: bool
) -> None:
    write_all(path, 2)
    with path.open("ab") as handle:
        handle.write(ending)
    fd = os.open(path, os.O_RDONLY)
    try:
        found = last_line(fd, path.stat().st_size)
    finally:
        os.close(fd)
    seq, digest, torn = last_record(path)
    assert (found is not None) == quick
    assert found is None or (found == (seq, digest) and not torn)
    new_log(path).append(record(3))  # whichever read it took, the chain goes on
    assert json.loads(path.read_bytes().splitlines()[-1])["seq"] == seq + 1


def test_a_whole_record_cut_off_before_its_newline_is_chained_to(path: Path) -> None:
    write_all(path, 2)
    whole = path.read_bytes().splitlines(keepends=True)[-1]
    third = json.loads(whole) | {"seq": 3, "prev": line_hash(whole), "run_id": "killed"}
    with path.open("ab") as handle:  # kill -9: the kernel stopped the write at a page
        handle.write(json.dumps(third).encode())  # boundary, just before its newline
    new_log(path).append(record(4))
    assert [r["seq"] for r in rows(path)] == [1, 2, 3, 4]  # not a second seq 3
    assert_chained(path, 4)


def test_a_rotation_by_another_instance_is_followed(path: Path) -> None:
    mine, other = new_log(path), new_log(path, max_bytes=1024, keep=5)  # only the other rotates
    mine.append(record(0))
    for i in range(1, 4):  # the other instance rotates: `mine` holds the retired file
        other.append(record(i, reason="r" * 200))
    retired = [file.read_bytes() for file in log_files(path)[:-1]]
    assert retired, "the other instance did not rotate"
    mine.append(record(4))
    assert [f.read_bytes() for f in log_files(path)[:-1]] == retired, "written to a retired file"
    assert rows(path)[-1]["target"] == "make test-4"
    assert_chained(path, 5)


def test_a_deleted_log_is_started_again_and_the_loss_reported(path: Path) -> None:
    log = new_log(path)
    for i in range(3):
        log.append(record(i))
    path.unlink()
    log.append(record(3))
    assert [r["seq"] for r in rows(path)] == [1]
    report = verify(path)
    assert not report.ok and "records were cut off the end" in report.problems[0]


# --- batches ----------------------------------------------------------------------------


def test_append_many_chains_each_record_with_one_write_and_one_fsync(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copies: list[bytes] = []
    log = AuditLog(path, sanitizer=Sanitizer(user="bob", home="/home/bob"),
                   sinks=[copies.append])  # fmt: skip
    log.append(record(0))
    calls: list[str] = []
    for name in ("write", "fsync"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda *a, _r=real, _n=name: calls.append(_n) or _r(*a))
    log.append_many([record(i, workspace="/home/bob/w") for i in range(1, 5)])
    monkeypatch.undo()
    assert (calls.count("write"), calls.count("fsync")) == (1, 1)
    lines = path.read_bytes().splitlines(keepends=True)
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4, 5]
    for before, after in itertools.pairwise(lines):
        assert json.loads(after)["prev"] == line_hash(before)
    assert all(json.loads(line)["workspace"] == "[USER]/w" for line in lines[1:])
    assert copies == lines  # every line, in order, to every sink
    assert read_head(path) == (5, line_hash(lines[-1]))
    assert_chained(path, 5)


def test_append_many_of_nothing_writes_nothing(path: Path) -> None:
    new_log(path).append_many([])
    assert not path.parent.exists()


def test_a_batch_is_never_split_by_a_rotation(path: Path) -> None:
    log = new_log(path, max_bytes=1000, keep=3)
    log.append(record(0))
    log.append_many([record(i) for i in range(1, 5)])  # over max_bytes with the first
    assert [r["seq"] for r in rows(path)] == [2, 3, 4, 5]
    assert [len(f.read_bytes().splitlines()) for f in log_files(path)] == [1, 4]
    assert_chained(path, 5)


def test_a_rotation_makes_the_retiring_file_durable_before_renaming_it(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = new_log(path, max_bytes=600, keep=3)
    log.append(record(1))
    log.append(record(2))
    retiring = path.stat().st_ino
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync retiring" if os.fstat(fd).st_ino == retiring else "fsync")
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        events.append(f"replace {Path(src).name}")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    log.append(record(3))  # over 600 bytes: rotates
    assert events == ["fsync retiring", "replace audit.log", "fsync"]
    assert_chained(path, 3)


# --- a failed fsync ----------------------------------------------------------------------


def failing_fsync(
    monkeypatch: pytest.MonkeyPatch, before_failing: Callable[[], None] = lambda: None
) -> list[int]:
    """os.fsync fails once (EIO), after ``before_failing`` (which may append itself)."""
    real, failed = os.fsync, []

    def fsync(fd: int) -> None:
        if failed:
            return real(fd)
        failed.append(fd)
        before_failing()
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)
    return failed


def test_a_failed_fsync_raises_and_takes_the_record_back(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = new_log(path)
    log.append(record(1))
    before, head = path.read_bytes(), path.with_name(HEAD_NAME).read_bytes()
    failing_fsync(monkeypatch)
    with pytest.raises(AuditError, match="Input/output error"):
        log.append_many([record(2), record(3)])
    assert path.read_bytes() == before  # nothing of the batch is left
    assert path.with_name(HEAD_NAME).read_bytes() == head  # the head never named it
    log.append(record(4))  # the chain goes on from record 1, not from the withdrawn one
    assert [r["seq"] for r in rows(path)] == [1, 2]
    assert_chained(path, 2)


def test_a_failed_fsync_leaves_a_record_another_writer_chained_to(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, other = new_log(path), new_log(path)
    mine.append(record(1))
    failing_fsync(monkeypatch, before_failing=lambda: other.append(record(3)))
    with pytest.raises(AuditError):
        mine.append(record(2))
    # Cutting record 2 now would cut record 3, whose append succeeded, and break the
    # chain: both stay, whole (the module docstring says so).
    assert [r["target"] for r in rows(path)] == ["make test-1", "make test-2", "make test-3"]
    assert_chained(path, 3)
    mine.append(record(4))
    assert_chained(path, 4)


def test_a_failed_fsync_never_cuts_a_rotated_file_the_next_one_chains_to(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, other = new_log(path, max_bytes=700, keep=3), new_log(path, max_bytes=700, keep=3)
    mine.append(record(1))
    failing_fsync(monkeypatch, before_failing=lambda: other.append(record(3)))  # rotates
    with pytest.raises(AuditError):
        mine.append(record(2))
    assert len(log_files(path)) == 2
    assert rows(path)[0]["target"] == "make test-3"
    assert_chained(path, 3)


def test_a_failed_write_is_cut_back_off_and_forgotten(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = new_log(path)
    log.append(record(1))
    real = os.write

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def half(fd: int, data: bytes) -> int:  # half a line lands, then the disk is full
        monkeypatch.setattr(os, "write", full)
        return real(fd, bytes(data[: len(data) // 2]))

    monkeypatch.setattr(os, "write", half)
    with pytest.raises(AuditError, match="No space"):
        log.append(record(2))
    monkeypatch.undo()
    assert path.read_bytes().endswith(b"\n") and len(rows(path)) == 1
    log.append(record(3))
    assert_chained(path, 2)


# --- threads, processes, forks, descriptors ---------------------------------------------


def test_threads_sharing_one_instance_keep_one_chain(path: Path) -> None:
    log = new_log(path)

    def write(t: int) -> None:
        for i in range(40):
            log.append(record(i, run_id=f"t{t}-{i}"))

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(r["run_id"] for r in rows(path)) == sorted(
        f"t{t}-{i}" for t in range(4) for i in range(40))  # fmt: skip
    assert_chained(path, 160)


MIXED_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from orchestrator.audit.log import AuditLog, Sanitizer
    log = AuditLog(Path(sys.argv[1]), sanitizer=Sanitizer(user="", home=""),
                   max_bytes=int(sys.argv[3]))
    name = sys.argv[2]
    for i in range(60):
        batch = [{"operation": "command_exec", "target": f"{name}:{i}:{j}",
                  "decision": "allowed", "reason": "r", "session_id": name,
                  "run_id": f"{name}:{i}"} for j in range(1 + i % 4)]
        log.append_many(batch) if len(batch) > 1 else log.append(batch[0])
    """
)


def test_eight_processes_appending_and_batching_at_once_keep_one_chain(path: Path) -> None:
    path.parent.mkdir(parents=True)
    writers = [subprocess.Popen([sys.executable, "-c", MIXED_WRITER, str(path), f"w{p}",
                                 str(64 * 1024)], cwd=REPO)
               for p in range(8)]  # fmt: skip
    assert [w.wait(timeout=240) for w in writers] == [0] * 8
    records = [r for file in log_files(path) for r in rows(file)]
    per_writer = sum(1 + i % 4 for i in range(60))
    assert len(records) == 8 * per_writer
    assert [r["seq"] for r in records] == list(range(1, 8 * per_writer + 1))
    runs = [r["run_id"] for r in records]  # a batch is one write: its records adjacent
    for run in set(runs):
        first = runs.index(run)
        assert set(runs[first : first + runs.count(run)]) == {run}
    assert len(log_files(path)) > 1  # rotations happened while others wrote
    assert_chained(path, 8 * per_writer)
    last = log_files(path)[-1].read_bytes().splitlines()[-1]  # writers finishing out of
    assert read_head(path) == (8 * per_writer, line_hash(last))  # order: the newest stays


def appended_within(path: Path, seconds: float, size: int) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.stat().st_size != size:
            return True
        time.sleep(0.01)
    return False


def test_a_replaced_lock_file_is_the_one_locked(path: Path) -> None:
    log = new_log(path)
    log.append(record(1))  # holds the first audit.lock open
    path.with_name("audit.lock").unlink()
    new_log(path).append(record(2))  # creates another
    size = path.stat().st_size
    fd = os.open(path.with_name("audit.lock"), os.O_WRONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        writer = threading.Thread(target=log.append, args=(record(3),))
        writer.start()
        assert not appended_within(path, 0.5, size), "wrote without the current lock"
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    writer.join(timeout=30)
    assert_chained(path, 3)


def test_a_forked_child_takes_the_lock_for_itself(path: Path) -> None:
    log = new_log(path)
    log.append(record(1))
    size = path.stat().st_size
    lock = log._locked(log._lock)  # the parent holds the lock through its kept descriptor …
    child = os.fork()
    if child == 0:  # pragma: no cover -- the child reports through its exit status
        code = 1
        try:
            log.append(record(2))  # … so the child must wait for the parent
            code = 0
        finally:
            os._exit(code)
    try:
        assert not appended_within(path, 0.5, size), "the child shared the parent's lock"
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    log.append(record(3))
    assert_chained(path, 3)


def test_kept_descriptors_are_not_inherited_and_close_reopens(path: Path) -> None:
    log = new_log(path)
    log.append(record(1))
    listed = subprocess.run(["ls", "-l", "/proc/self/fd/"], close_fds=False,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "audit." not in listed, listed
    log.close()
    log.append(record(2))
    assert_chained(path, 2)


def test_timestamps_keep_their_format() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now_utc())


def test_a_line_is_what_json_dumps_writes(path: Path) -> None:
    log = new_log(path)
    log.append({"operation": "command_exec", "target": 'é \udcff "q"', "n": [1, None]})
    log.append({"seq": 99, "prev": "forged", "timestamp": "then"})  # the writer's own fields
    log.append({})
    for line in path.read_bytes().splitlines():
        assert line == json.dumps(json.loads(line), ensure_ascii=True).encode()
    assert [list(r) for r in rows(path)][1:] == [["timestamp", "seq", "prev"]] * 2
    assert_chained(path, 3)
