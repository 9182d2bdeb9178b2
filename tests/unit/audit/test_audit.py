"""The audit log: JSON Lines, sanitized, locked; unwritable → AuditError; queries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.audit.log import AuditLog, Sanitizer
from orchestrator.audit.query import Query, parse_time, read
from orchestrator.core.errors import EXIT_SETUP, AuditError, ConfigError, Refused
from orchestrator.runner.context import HostContext
from orchestrator.runner.pipeline import Runner, RunRequest

REQUIRED_KEYS = {"timestamp", "operation", "target", "decision", "reason", "session_id"}


def record(**fields: Any) -> dict[str, Any]:
    return {
        "operation": "command_exec",
        "target": "make test",
        "decision": "allowed",
        "reason": "profile offline",
        "session_id": "s1",
        **fields,
    }


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "codex" / "audit.log", sanitizer=Sanitizer(user="", home=""))


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_each_append_is_one_json_line_with_the_required_fields(log: AuditLog) -> None:
    log.append(record())
    log.append(record(decision="denied", reason="refused"))
    raw = log.path.read_text(encoding="utf-8")
    assert raw.endswith("\n") and raw.count("\n") == 2
    first, second = lines(log.path)
    for entry in (first, second):
        assert entry.keys() >= REQUIRED_KEYS
        assert entry["timestamp"].endswith("Z")
        stamp = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
        assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=5)
    assert (first["decision"], second["decision"]) == ("allowed", "denied")


def test_append_creates_the_log_private_to_the_user(log: AuditLog) -> None:
    log.append(record())
    assert log.path.stat().st_mode & 0o777 == 0o600
    assert log.path.parent.stat().st_mode & 0o777 == 0o700


def test_append_keeps_earlier_records(log: AuditLog) -> None:
    for i in range(5):
        log.append(record(target=f"cmd {i}"))
    assert [r["target"] for r in lines(log.path)] == [f"cmd {i}" for i in range(5)]


def test_a_refused_run_writes_a_denied_record_with_every_required_field(
    base_env: dict[str, str], codex_home: Path, workspace: Path
) -> None:
    runner = Runner(
        HostContext.from_environ(base_env, cwd=str(workspace)),
        RunRequest(argv=("touch", "x"), profile="trusted"),
    )
    with pytest.raises(Refused):
        runner.prepare()
    (entry,) = lines(codex_home / "audit.log")
    assert entry.keys() >= REQUIRED_KEYS
    assert entry["decision"] == "denied" and entry["operation"] == "command_exec"
    assert entry["target"] == "touch x"
    assert entry["session_id"] == runner.session_id
    assert entry["profile"] == "trusted" and entry["profile_source"] == "flag"
    assert "explicit opt-in" in entry["reason"]


def test_the_session_id_comes_from_codex_box_session_when_set(
    base_env: dict[str, str], codex_home: Path, workspace: Path
) -> None:
    env = {**base_env, "CODEX_BOX_SESSION": "outer-session"}
    runner = Runner(
        HostContext.from_environ(env, cwd=str(workspace)), RunRequest(argv=("x",), profile="nope")
    )
    with pytest.raises(ConfigError):
        runner.prepare()
    assert lines(codex_home / "audit.log")[0]["session_id"] == "outer-session"


# --- sanitizer --------------------------------------------------------------------------


def test_sanitizer_replaces_the_home_directory_and_user_name() -> None:
    clean = Sanitizer(user="alice", home="/home/alice/")
    assert clean("cat /home/alice/.ssh/id_rsa") == "cat [USER]/.ssh/id_rsa"
    assert clean("cd /home/alice") == "cd [USER]"
    assert clean("ls ~alice; echo alice") == "ls ~[USER]; echo [USER]"
    assert clean("owner=alice,group=staff") == "owner=[USER],group=staff"


def test_sanitizer_does_not_mangle_words_merely_containing_the_name() -> None:
    clean = Sanitizer(user="alice", home="/home/alice")
    for text in (
        "malice",
        "alicent",
        "alice_bot",
        "grep -r palace",
        "/home/alicex/data",
        "alice-cooper",
    ):
        assert clean(text) == text


def test_sanitizer_with_no_user_or_root_home_changes_nothing() -> None:
    assert Sanitizer(user="", home="/")("cd /etc && make") == "cd /etc && make"


def test_append_sanitizes_target_workspace_and_reason_but_not_ids(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.log", sanitizer=Sanitizer(user="bob", home="/home/bob"))
    log.append(
        record(
            target="cat /home/bob/notes",
            workspace="/home/bob/proj",
            reason="chosen by bob",
            session_id="bob",
        )
    )
    (entry,) = lines(log.path)
    assert entry["target"] == "cat [USER]/notes"
    assert entry["workspace"] == "[USER]/proj"
    assert entry["reason"] == "chosen by [USER]"
    assert entry["session_id"] == "bob"


# --- concurrency ------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from orchestrator.audit.log import AuditLog, Sanitizer

    path, proc, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    log = AuditLog(path, sanitizer=Sanitizer(user="", home=""))
    padding = "x" * 10000  # longer than a pipe/page buffer: a torn write would show
    for i in range(count):
        log.append({"operation": "command_exec", "target": f"{proc}:{i}", "decision": "allowed",
                    "reason": padding, "session_id": f"p{proc}", "proc": proc, "index": i})
    """
)


def test_concurrent_appends_from_many_processes_never_interleave_or_get_lost(
    tmp_path: Path,
) -> None:
    path, procs, count = tmp_path / "audit.log", 8, 200
    children = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(p), str(count)])
        for p in range(procs)
    ]
    assert [child.wait(timeout=90) for child in children] == [0] * procs
    raw = path.read_text(encoding="utf-8").splitlines()
    assert len(raw) == procs * count
    seen = [(entry["proc"], entry["index"]) for entry in map(json.loads, raw)]
    assert sorted(seen) == [(p, i) for p in range(procs) for i in range(count)]
    for p in range(procs):  # each writer's own records stay in order
        assert [i for q, i in seen if q == p] == list(range(count))


# --- unwritable -------------------------------------------------------------------------


def test_a_log_path_that_is_a_directory_raises_audit_error(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.mkdir()
    log = AuditLog(path, sanitizer=Sanitizer(user="", home=""))
    with pytest.raises(AuditError) as info:
        log.append(record())
    assert info.value.exit_code == EXIT_SETUP
    assert str(path) in info.value.message
    assert "nothing is launched without an audit record" in info.value.hint


def test_a_log_under_a_regular_file_raises_audit_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    log = AuditLog(tmp_path / "file" / "audit.log", sanitizer=Sanitizer(user="", home=""))
    with pytest.raises(AuditError, match="cannot write audit log"):
        log.append(record())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_log_in_a_read_only_directory_raises_audit_error(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        log = AuditLog(directory / "audit.log", sanitizer=Sanitizer(user="", home=""))
        with pytest.raises(AuditError):
            log.append(record())
    finally:
        directory.chmod(0o700)


# --- reading and queries ----------------------------------------------------------------


def write_lines(path: Path, entries: list[dict[str, Any] | str]) -> None:
    path.write_text(
        "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in entries),
        encoding="utf-8",
    )


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / "audit.log"
    write_lines(
        path,
        [
            record(timestamp="2026-01-01T10:00:00.000Z", decision="allowed", session_id="a"),
            record(timestamp="2026-01-02T10:00:00.000Z", decision="denied", session_id="a"),
            record(timestamp="2026-01-03T10:00:00.000Z", decision="denied", session_id="b"),
            record(
                timestamp="2026-01-04T10:00:00.000Z",
                decision="requires_approval",
                operation="file_write",
                session_id="b",
            ),
        ],
    )
    return path


def stamps(path: Path, query: Query) -> list[str]:
    return [r["timestamp"][:10] for r in read(path, query)]


def test_query_without_filters_returns_everything_oldest_first(history: Path) -> None:
    assert stamps(history, Query()) == ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]


def test_query_filters_by_decision(history: Path) -> None:
    assert stamps(history, Query(decision="denied")) == ["2026-01-02", "2026-01-03"]


def test_query_filters_by_operation(history: Path) -> None:
    assert stamps(history, Query(operation="file_write")) == ["2026-01-04"]
    assert len(stamps(history, Query(operation="command_exec"))) == 3


def test_query_filters_by_session(history: Path) -> None:
    assert stamps(history, Query(session="b")) == ["2026-01-03", "2026-01-04"]


def test_query_filters_by_since_and_until_inclusively(history: Path) -> None:
    since = parse_time("2026-01-02T10:00:00Z")
    until = parse_time("2026-01-03T10:00:00Z")
    assert stamps(history, Query(since=since)) == ["2026-01-02", "2026-01-03", "2026-01-04"]
    assert stamps(history, Query(until=until)) == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert stamps(history, Query(since=since, until=until)) == ["2026-01-02", "2026-01-03"]


def test_query_filters_combine(history: Path) -> None:
    query = Query(decision="denied", session="a", since=parse_time("2026-01-01"))
    assert stamps(history, query) == ["2026-01-02"]


def test_reading_a_missing_log_yields_nothing(tmp_path: Path) -> None:
    assert list(read(tmp_path / "none.log", Query())) == []


def test_an_unparseable_line_is_reported_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_lines(path, [record(target="one"), '{"timestamp": "2026-01-0', record(target="three")])
    entries = list(read(path, Query()))
    assert len(entries) == 3
    assert entries[1]["operation"] == "unparseable"
    assert entries[1]["line"] == 2
    assert entries[1]["target"].startswith('{"timestamp": "2026-01-0')
    assert [entries[0]["target"], entries[2]["target"]] == ["one", "three"]


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_text(json.dumps(record()) + "\n\n   \n" + json.dumps(record()) + "\n")
    assert len(list(read(path, Query()))) == 2


def test_a_line_that_is_json_but_not_a_record_is_reported_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_lines(path, [record(target="one"), "0", "null", record(target="four")])
    entries = list(read(path, Query()))
    assert len(entries) == 4
    assert [e["operation"] for e in entries[1:3]] == ["unparseable", "unparseable"]


def test_a_record_timestamp_without_timezone_does_not_crash_a_time_query() -> None:
    query = Query(since=parse_time("2026-01-01"))
    assert query.matches({"timestamp": "2026-01-02T00:00:00", "decision": "allowed"})


def test_parse_time_accepts_iso_dates_and_times() -> None:
    assert parse_time("2026-11-28") == datetime(2026, 11, 28, tzinfo=UTC)
    assert parse_time("2026-11-28T10:00:00Z") == datetime(2026, 11, 28, 10, tzinfo=UTC)
    assert parse_time("2026-11-28T12:00:00+02:00") == datetime(2026, 11, 28, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("30s", timedelta(seconds=30)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        (" 5 m ", timedelta(minutes=5)),
    ],
)
def test_parse_time_accepts_ages(text: str, delta: timedelta) -> None:
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert parse_time(text, now=now) == now - delta


@pytest.mark.parametrize("text", ["yesterday", "2w", "", "2026-13-01"])
def test_parse_time_rejects_what_it_does_not_understand(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_time(text)
    assert "30m, 2h, 7d" in info.value.hint
