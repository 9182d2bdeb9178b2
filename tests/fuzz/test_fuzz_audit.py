"""codex-box's own audit log, damaged: ``audit verify`` (``audit.verify.verify``), the
query filters and reading (``audit.query.parse_time``, ``read``) and the writer
(``AuditLog.append``, which chains to whatever the log ends with). A log with garbage
in it — torn lines, NULs, deep JSON, huge numbers, a forged ``audit.head`` — is
reported, never a crash; appending after the garbage never changes a byte of the
records before it, and the new record is a whole, chained line of its own."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.audit.chain import HEAD_NAME
from orchestrator.audit.log import AuditLog, Sanitizer
from orchestrator.audit.query import Query, parse_line, parse_time, read, summarise
from orchestrator.audit.verify import verify
from orchestrator.core.errors import EXIT_SETUP, AuditError, ConfigError

from .conftest import assert_one_line_error, deep_nesting, fuzz, json_values, odd_text, outcome

NO_SANITIZING = Sanitizer(user="", home="")
RECORD = {"operation": "command_exec", "decision": "allowed", "target": "ls", "phase": "ended"}

garbage_lines = (
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    | deep_nesting().map(str.encode)
    | deep_nesting('{"seq": ', "}").map(str.encode)
    | st.sampled_from([b'{"seq": 1' + b"0" * 5000 + b', "prev": "x"}', b'{"seq": true}', b"\0",
                       b'{"seq": 2, "prev": "' + b"0" * 64 + b'"}', b"\xff\xfe", b"\r", b"",
                       b'{"timestamp": "9999-99-99", "seq": -1}', b'{"operation": null}'])
    | st.binary(max_size=300)
)  # fmt: skip
damages = st.lists(
    st.tuples(st.sampled_from(["insert", "replace", "truncate", "flip"]), st.integers(0, 10**6),
              garbage_lines),
    min_size=1, max_size=4,
)  # fmt: skip


def damaged(data: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    for kind, at, junk in edits:
        at = at % (len(data) + 1)
        if kind == "insert":
            data = data[:at] + junk + b"\n" + data[at:]
        elif kind == "replace":
            data = data[:at] + junk + data[at + len(junk) :]
        elif kind == "truncate":
            data = data[:at]
        elif data:
            data = data[:at] + bytes([data[at % len(data)] ^ 0x20]) + data[at + 1 :]
    return data


def fresh_log(directory: Path, count: int) -> Path:
    path = directory / "audit.log"
    log = AuditLog(path, sanitizer=NO_SANITIZING)
    for i in range(count):
        log.append({**RECORD, "target": f"ls {i}"})
    log.close()
    if not path.exists():
        path.write_bytes(b"")
    return path


def assert_one_liners(lines: list[str]) -> None:
    for line in lines:
        assert isinstance(line, str) and "\n" not in line and "\r" not in line, repr(line)


@fuzz("audit log (verify, read)", examples=150)
@given(st.integers(0, 4), damages, st.none() | garbage_lines)
def test_verify_and_read_a_damaged_log(count: int, edits: Any, head: bytes | None) -> None:
    with tempfile.TemporaryDirectory() as top:
        path = fresh_log(Path(top), count)
        path.write_bytes(damaged(path.read_bytes(), edits))
        if head is not None:
            path.with_name(HEAD_NAME).write_bytes(head)
        report, error = outcome(lambda: verify(path), edits)
        assert error is None, error
        assert_one_liners(report.problems)
        assert_one_liners(report.torn)
        json.dumps(report.as_json())  # `audit verify --json` can print it
        _, error = outcome(lambda: list(read(path, Query(decision="denied"))), edits)
        assert error is None, error
        every, _ = outcome(lambda: list(read(path, Query())), edits)
        summarise(iter(every))
        for record in every:  # `audit --json` prints each
            json.dumps(record, ensure_ascii=False)


@fuzz("audit log (append after garbage)", examples=150)
@given(st.integers(0, 4), garbage_lines, st.booleans(), st.none() | garbage_lines)
def test_appending_after_garbage_keeps_every_earlier_byte(
    count: int, junk: bytes, newline: bool, head: bytes | None
) -> None:
    with tempfile.TemporaryDirectory() as top:
        path = fresh_log(Path(top), count)
        with path.open("ab") as out:
            out.write(junk + (b"\n" if newline else b""))
        if head is not None:
            path.with_name(HEAD_NAME).write_bytes(head)
        before = path.read_bytes()
        log = AuditLog(path, sanitizer=NO_SANITIZING)
        _, error = outcome(lambda: log.append({**RECORD, "target": "after"}), junk)
        log.close()
        after = path.read_bytes()
    if error is not None:
        assert_one_line_error(error, AuditError, exit_code=EXIT_SETUP)
        assert after == before
        return
    assert after.startswith(before), "an earlier byte of the log changed"
    added = after[len(before) :]
    assert added.endswith(b"\n") and added.count(b"\n") <= 2, added
    last = after[:-1].rsplit(b"\n", 1)[-1]  # the new record is a line of its own
    new = json.loads(last)
    assert new["target"] == "after" and isinstance(new["seq"], int) and len(new["prev"]) == 64


ages = st.builds(lambda n, u: f"{n}{u}", st.integers(0, 10**40), st.sampled_from("smhdx"))


@fuzz("audit query filters (--since/--until)", examples=300)
@given(ages | odd_text | st.sampled_from(["2026-11-28", "2026-11-28T10:00Z", "9" * 5000 + "d"]))
def test_since_and_until(text: str) -> None:
    when, error = outcome(lambda: parse_time(text), text)
    if error is not None:
        assert_one_line_error(error, ConfigError, exit_code=EXIT_SETUP)
        return
    Query(since=when, until=when).matches({"timestamp": "2026-11-28T10:00:00Z"})


@fuzz("audit log line (read)", examples=300)
@given(garbage_lines, odd_text)
def test_any_line_reads_as_a_record(line: bytes, filter_value: str) -> None:
    record, error = outcome(lambda: parse_line(line.decode(errors="replace"), number=1,
                                               file=Path("audit.log")), line)  # fmt: skip
    assert error is None and isinstance(record, dict), error
    Query(decision=filter_value, profile=filter_value, session=filter_value).matches(record)
