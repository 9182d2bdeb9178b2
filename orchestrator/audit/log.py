"""The audit log: append-only JSON Lines, sanitized, hash-chained, locked, fsync'd,
rotated by size.

Owns: writing one record (its sanitizing, its place in the hash chain, rotation, the
optional sinks) and the closed sets of operations and decisions. Does not own: a
record's fields (``records``, one builder per record), deciding when to record
(``runner``, ``policy.gate``), reading, verifying or summarising (``query``,
``verify``).

Each record carries ``seq`` (one more than the record before it, across rotated files)
and ``prev``, the SHA-256 of the previous record's line: editing, deleting or reordering
a line breaks the chain where it happened (``codex-box audit verify``). ``audit.head``
remembers the newest record, so cutting records off the end shows too. This is tamper
*evidence*: whoever can write the files can rewrite the whole chain; the sinks (syslog,
a second JSONL read by a SIEM agent) keep a copy out of their reach.

Appends are serialised by an ``flock`` on ``audit.lock`` (never rotated, so a writer
waiting for it always appends to the current file). A record is one ``O_APPEND`` write
followed by ``fsync``; a write that fails half-way is cut back off, so a record is a
whole line or absent. If the log cannot be written, the caller must not launch.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.core.errors import AuditError
from orchestrator.core.log import debug

from .redact import Redactor

DECISIONS = ("allowed", "denied", "requires_approval")
# The documented closed set (README: Audit log). A record of any other operation is a
# bug: the schema test rejects it.
OPERATIONS = (
    "command_exec",  # a launch: decided (allowed/denied) and ended (the outcome)
    "approval",  # an unverified command: approval asked, granted or refused
    "profile_resolve",  # which profile applies, and from where
    "backend_select",  # which backend runs it, and why the others did not
    "sandbox_setup",  # the sandbox could not be set up: nothing ran
    "network_connect",  # a request the egress proxy refused
    "elevation",  # a temporary elevation granted, used or expired
    "planted_repo",  # a git repository the run planted, or whose config or hooks it changed
)
LOG_NAME = "audit.log"
LOCK_NAME = "audit.lock"
HEAD_NAME = "audit.head"
GENESIS = "0" * 64  # `prev` of the very first record
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_KEEP = 5
MAX_TEXT = 4096  # longer text fields are cut: one record stays one modest line
TEXT_FIELDS = ("target", "workspace", "reason", "policy_reason", "domain", "method")
_TAIL_CHUNK = 4096  # most records fit; a longer last line widens the read


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def line_hash(line: bytes) -> str:
    """The chain's hash of one record: SHA-256 of its line, without the newline."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def rotated(path: Path, index: int) -> Path:
    return path.with_name(f"{path.name}.{index}")


def log_files(path: Path) -> list[Path]:
    """The log and its rotations, oldest first (audit.log.N … audit.log.1, audit.log)."""
    older = []
    index = 1
    while rotated(path, index).exists():
        older.append(rotated(path, index))
        index += 1
    return [*reversed(older), *([path] if path.exists() else [])]


Sink = Callable[[bytes], None]


# What every text field goes through before it is written (redact): the user's home
# and name → [USER], secrets in argv, env-style assignments, headers, URLs and known key
# shapes → [REDACTED].
Sanitizer = Redactor


class AuditLog:
    def __init__(
        self,
        path: Path,
        *,
        sanitizer: Callable[[str], str],
        max_bytes: int = DEFAULT_MAX_BYTES,
        keep: int = DEFAULT_KEEP,
        sinks: Sequence[Sink] = (),
    ) -> None:
        self.path = path
        self.sanitize = sanitizer
        self.max_bytes = max_bytes
        self.keep = max(1, keep)  # verify relies on a rotated file preceding a later start
        self.sinks = tuple(sinks)

    def append(self, record: Mapping[str, Any]) -> None:
        """Write ``record`` (sanitized, chained) or raise AuditError; nothing half-written."""
        clean = {k: self._clean(k, v) for k, v in record.items()}
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with self._locked():
                line = self._append_locked(clean)
        except OSError as exc:
            raise _unwritable(self.path, exc) from exc
        for sink in self.sinks:  # failure-isolated: a sink never costs the primary record
            try:
                sink(line)
            except Exception as exc:  # any sink failure is only logged, never raised
                debug("audit sink failed", sink=repr(sink), error=str(exc))

    def _clean(self, key: str, value: Any) -> Any:
        if key not in TEXT_FIELDS or not isinstance(value, str):
            return value
        text = self.sanitize(value)
        return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…[truncated]"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock = os.open(
            self.path.with_name(LOCK_NAME), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        finally:
            os.close(lock)  # closing releases the lock

    def _append_locked(self, fields: dict[str, Any]) -> bytes:
        seq, prev, torn = last_record(self.path)
        size = self.path.stat().st_size if self.path.exists() else 0
        chained = ("timestamp", "seq", "prev")  # the writer's own: a caller cannot set them
        own = {k: v for k, v in fields.items() if k not in chained}
        record = {"timestamp": now_utc(), "seq": seq + 1, **own, "prev": prev}
        # ASCII: argv that is not valid UTF-8 (surrogate escapes) must not lose the record.
        line = (json.dumps(record, ensure_ascii=True) + "\n").encode()
        if size and size + len(line) > self.max_bytes:
            self._rotate()
            size, torn = 0, False
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            # A torn last line (a crash mid-write elsewhere) is closed off, so this record
            # starts on a line of its own; `verify` reports the fragment.
            data = (b"\n" if torn else b"") + line
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)  # never leave half a record behind
                raise
        finally:
            os.close(fd)
        _write_head(self.path, seq + 1, line_hash(line))
        return line

    def _rotate(self) -> None:
        """audit.log → audit.log.1 → … → audit.log.KEEP; the oldest beyond KEEP goes."""
        rotated(self.path, self.keep).unlink(missing_ok=True)
        for index in range(self.keep - 1, 0, -1):
            if rotated(self.path, index).exists():
                os.replace(rotated(self.path, index), rotated(self.path, index + 1))
        os.replace(self.path, rotated(self.path, 1))


def last_record(path: Path) -> tuple[int, str, bool]:
    """(seq, hash) of the newest complete record, in the log or else its rotations, and
    whether the current log ends in a torn (unterminated) line."""
    torn_here = False
    for candidate in reversed(log_files(path)):
        found, torn = _last_in(candidate)
        torn_here = torn_here or (torn and candidate == path)
        if found is not None:
            return found[0], found[1], torn_here
    return 0, GENESIS, torn_here


def _last_in(path: Path) -> tuple[tuple[int, str] | None, bool]:
    size = path.stat().st_size
    if size == 0:
        return None, False
    with path.open("rb") as handle:
        start = max(0, size - _TAIL_CHUNK)
        while True:
            handle.seek(start)
            chunk = handle.read(size - start)
            torn = not chunk.endswith(b"\n")
            lines = chunk.split(b"\n")
            complete = lines[:-1] if start == 0 else lines[1:-1]
            for line in reversed(complete):
                parsed = _seq_of(line)
                if parsed is not None:
                    return (parsed, line_hash(line)), torn
            if start == 0:
                return None, torn
            start = max(0, start - _TAIL_CHUNK * 4)


def _seq_of(line: bytes) -> int | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    seq = record.get("seq") if isinstance(record, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _write_head(path: Path, seq: int, digest: str) -> None:
    """Best effort (no fsync): a head that lags after a crash is still a true prefix."""
    head = path.with_name(HEAD_NAME)
    with contextlib.suppress(OSError):
        fd = os.open(head, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps({"seq": seq, "hash": digest}).encode() + b"\n")
        finally:
            os.close(fd)


def _unwritable(path: Path, exc: OSError) -> AuditError:
    return AuditError(
        f"cannot write audit log {path}: {exc.strerror or exc}",
        hint="free space or fix permissions, or point CODEX_HOME elsewhere; "
        "nothing is launched without an audit record",
    )
