"""The audit log: append-only JSON Lines, sanitized, hash-chained, locked, fsync'd,
rotated by size.

Owns: writing records (their sanitizing, their place in the hash chain, rotation,
``audit.head``, the optional sinks) and the closed sets of operations and decisions.
Does not own: a record's fields (``records``, one builder per record), deciding when to
record (``runner``, ``policy.gate``), the files' names, the tail and the head's format
(``chain``), reading, verifying or summarising (``query``, ``verify``).

Each record carries ``seq`` (one more than the record before it, across rotated files)
and ``prev``, the SHA-256 of the previous record's line: editing, deleting or reordering
a line breaks the chain where it happened (``codex-box audit verify``). ``audit.head``
remembers the newest durable record, so cutting records off the end shows too. This is
tamper *evidence*: whoever can write the files can rewrite the whole chain; the sinks
(syslog, a second JSONL read by a SIEM agent) keep a copy out of their reach.

Appends are serialised by an ``flock`` on ``audit.lock`` (never rotated, so a writer
waiting for it always appends to the current file). Under it a batch (``append_many``;
``append`` is a batch of one) is chained to the newest record and written with one
``O_APPEND`` write; a write that fails half-way is cut back off, so a record is a whole
line or absent. The ``fsync`` comes after the lock is released (group commit): other
writers chain and write meanwhile, and one flush makes all of them durable. The chain
stays a durable prefix: records are written in chain order, an fsync flushes every
earlier write of the file, and a rotation fsyncs the file it retires first. ``append``
returns once its own records are durable; if the log cannot be written it raises
AuditError, and the caller must not launch.

A failed fsync: the lock is taken again and the records are cut back off if the current
log still ends with exactly their bytes. Otherwise a later record (here or, after a
rotation, in the next file) is already chained to them and cutting them would break the
chain: they stay, whole and chained, and append still raises. Such a record tells of a
launch that never happened (decided, never ended), as a crash just after it would. After
that I/O error a crash may still lose them; ``verify`` then names the gap: evidence,
never silence.

Between appends an AuditLog keeps its descriptors open (close-on-exec) and remembers
where its last write ended. When, under the lock, the path still names that file (an
open descriptor keeps its inode from being reused) at that size, nobody has written
since and the tail is not read again; anything else (another writer, a rotation, a cut)
and it is read afresh. An in-place edit of the last line keeps the size: the next record
chains to the line as written, and verify shows the edit. A forked child opens its own
descriptors: sharing its parent's open file descriptions would share its locks.
"""

from __future__ import annotations

import _thread  # the mutex: `threading` would be one more import on every launch
import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.core.errors import AuditError
from orchestrator.core.log import debug

from .chain import (
    HEAD_NAME,
    HEAD_WIDTH,
    head_line,
    last_line,
    last_record,
    line_hash,
    parse_head,
    rotated,
)
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
    "credential_use",  # a brokered secret's placeholder sent where it may not go
    "elevation",  # a temporary elevation granted, used or expired
    "planted_repo",  # a git repository the run planted, or whose config or hooks it changed
    "session_start",  # a session's sandbox built (or refused); its execs carry its id
    "session_stop",  # a session ended: asked, idle, too old, its sandbox died, a signal
    "file_read",  # codex-box mcp: a workspace file read or listed (or refused)
    "file_write",  # codex-box mcp: a workspace file written (or refused)
    "mcp_tool_call",  # codex-box mcp wrap: a wrapped server's tool called (or refused)
)
LOG_NAME = "audit.log"
LOCK_NAME = "audit.lock"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_KEEP = 5
MAX_TEXT = 4096  # longer text fields are cut: one record stays one modest line
TEXT_FIELDS = (
    "target",
    "workspace",
    "reason",
    "policy_reason",
    "domain",
    "method",
    "secret",
    "tool",
)
CHAINED = ("timestamp", "seq", "prev")  # the writer's own: a caller cannot set them


_second: tuple[int, str] = (-1, "")  # strftime once a second: now_utc runs under the lock


def now_utc() -> str:
    """ISO 8601 UTC with milliseconds (``2026-12-07T04:19:57.123Z``), without datetime."""
    global _second
    ns = time.time_ns()
    second, text = _second
    if ns // 1_000_000_000 != second:
        second = ns // 1_000_000_000
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = (second, text)
    return f"{text}.{ns // 1_000_000 % 1000:03d}Z"


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
        self._lock = _Kept(path.with_name(LOCK_NAME), os.O_WRONLY)
        self._log = _Kept(path, os.O_RDWR | os.O_APPEND)  # read: a failed fsync's check
        self._head = _Kept(path.with_name(HEAD_NAME), os.O_RDWR)
        self._mutex = _thread.allocate_lock()  # threads of this process (the egress proxy's)
        self._pid = os.getpid()
        self._tail: tuple[int, int, str] | None = None  # (size, seq, hash) after our write
        self._wrote: tuple[bytes, int] | None = None  # our last audit.head, and its seq

    def append(self, record: Mapping[str, Any]) -> None:
        """Write ``record`` (sanitized, chained) or raise AuditError; nothing half-written."""
        self.append_many((record,))

    def append_many(self, records: Iterable[Mapping[str, Any]]) -> list[int]:
        """Write ``records`` in order, each sanitized and chained to the one before, with
        one lock, one write and one fsync; or raise AuditError (a failed fsync: module
        docstring). A batch is never split by a rotation. Sinks get each line. Returns
        the records' ``seq`` numbers (what a launch's result cites as ``audit``)."""
        batch = [self._body(record) for record in records]
        if not batch:
            return []
        try:
            lines, last = self._commit(batch)
        except OSError as exc:
            raise _unwritable(self.path, exc) from exc
        for line in lines:
            for sink in self.sinks:  # failure-isolated: a sink never costs the primary record
                try:
                    sink(line)
                except Exception as exc:  # any sink failure is only logged, never raised
                    debug("audit sink failed", sink=repr(sink), error=str(exc))
        return list(range(last - len(batch) + 1, last + 1))

    def close(self) -> None:
        """Close the descriptors kept between appends (the next append opens them again)."""
        self._adopt()
        with self._mutex:
            self._forget()

    def __del__(self) -> None:
        # Not contextlib.suppress: at interpreter exit the module's globals may be gone.
        try:  # noqa: SIM105
            self._forget()
        except Exception:  # noqa: S110
            pass

    def _body(self, record: Mapping[str, Any]) -> str:
        """The record's own fields, sanitized, as the middle of its JSON line: everything
        but the chain's fields is serialised before the lock is taken."""
        own = {k: self._clean(k, v) for k, v in record.items() if k not in CHAINED}
        # ASCII: argv that is not valid UTF-8 (surrogate escapes) must not lose the record.
        return json.dumps(own, ensure_ascii=True)[1:-1] + ", " if own else ""

    def _clean(self, key: str, value: Any) -> Any:
        if key not in TEXT_FIELDS or not isinstance(value, str):
            return value
        text = self.sanitize(value)
        return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…[truncated]"

    def _commit(self, batch: list[str]) -> tuple[list[bytes], int]:
        self._adopt()
        with self._mutex:
            lock = self._locked(self._lock)
            try:
                fd, data, size, lines, seq = self._write_locked(batch)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)  # always: a forked child may share it
            try:
                os.fsync(fd)  # unlocked: writers who come meanwhile join this flush
            except OSError:
                self._withdraw(fd, data, size)
                raise
            self._write_head(seq, line_hash(lines[-1]))
        return lines, seq

    def _write_locked(self, batch: list[str]) -> tuple[int, bytes, int, list[bytes], int]:
        """Chain and write ``batch``: (descriptor, bytes written, where, lines, last seq)."""
        fd, size = self._current()
        if self._tail is not None and self._tail[0] == size:
            seq, prev, torn = self._tail[1], self._tail[2], False  # nobody wrote since us
        elif found := last_line(fd, size):
            (seq, prev), torn = found, False  # another writer's whole record
        else:  # empty after a rotation (the chain goes on from the file before), torn, …
            seq, prev, torn = last_record(self.path)
        lines = []
        for body in batch:
            seq += 1
            # What json.dumps({"timestamp": …, "seq": …, **own, "prev": …}) would write.
            line = f'{{"timestamp": "{now_utc()}", "seq": {seq}, {body}"prev": "{prev}"}}\n'
            lines.append(line.encode())
            prev = line_hash(lines[-1])
        data = b"".join(lines)
        if size and size + len(data) > self.max_bytes:
            fd = self._rotate(fd)
            size, torn = 0, False
        # A torn last line (a crash mid-write elsewhere) is closed off, so this record
        # starts on a line of its own; `verify` reports the fragment.
        data = (b"\n" if torn else b"") + data
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)  # never leave half a record behind (we hold the lock)
            raise
        self._tail = (size + len(data), seq, prev)
        return fd, data, size, lines, seq

    def _withdraw(self, fd: int, data: bytes, size: int) -> None:
        """After a failed fsync: cut ``data`` (written at ``size``) back off, if the current
        log still ends with it; else a later record is chained to it: it stays."""
        self._tail = None
        with contextlib.suppress(OSError):
            lock = self._locked(self._lock)
            try:
                current = self._log.stat()  # None: rotated or replaced since
                if (
                    current is not None
                    and current.st_size == size + len(data)
                    and os.pread(fd, len(data), size) == data
                ):
                    os.ftruncate(fd, size)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_head(self, seq: int, digest: str) -> None:
        """Best effort (no fsync, so after a crash it may lag: still a true prefix). In
        place, under an flock of audit.head itself (not the log's: appends need not wait
        for it); only forward: writers finishing out of order leave the newest, and
        records cut off the end stay reported until the chain grows past them."""
        with contextlib.suppress(OSError):
            fd = self._locked(self._head)
            try:
                old = os.pread(fd, HEAD_WIDTH + 1, 0)
                if self._wrote is not None and old == self._wrote[0]:
                    named: int | None = self._wrote[1]  # still ours: no need to parse it
                else:
                    parsed = parse_head(old)
                    named = None if parsed is None else parsed[0]
                if named is None or named < seq:
                    line = head_line(seq, digest)
                    os.pwrite(fd, line, 0)
                    if len(old) > HEAD_WIDTH:  # longer (not ours): no stale bytes after
                        os.ftruncate(fd, HEAD_WIDTH)
                    self._wrote = (line, seq)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _locked(self, kept: _Kept) -> int:
        """flock ``kept``'s file, checked to be the one its path names (a lock on a file
        since unlinked would exclude nobody); returns the locked descriptor."""
        while True:
            fd = kept.fd
            if fd is None:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd, _ = kept.open()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if kept.stat() is not None:
                    return fd
            except BaseException:
                fcntl.flock(fd, fcntl.LOCK_UN)
                raise
            fcntl.flock(fd, fcntl.LOCK_UN)
            kept.close()

    def _current(self) -> tuple[int, int]:
        """Under the lock: a descriptor on the file the log's path names now, its size."""
        fd, st = self._log.fd, self._log.stat()
        if fd is None or st is None:  # first, or rotated or replaced by another writer
            self._log.close()
            self._tail = None
            fd, st = self._log.open()
        return fd, st.st_size

    def _rotate(self, fd: int) -> int:
        """audit.log → audit.log.1 → … → audit.log.KEEP; the oldest beyond KEEP goes.
        The retiring file is fsync'd first: records other writers put there may not be
        durable yet, and none after them may be durable before they are."""
        os.fsync(fd)
        rotated(self.path, self.keep).unlink(missing_ok=True)
        for index in range(self.keep - 1, 0, -1):
            if rotated(self.path, index).exists():
                os.replace(rotated(self.path, index), rotated(self.path, index + 1))
        os.replace(self.path, rotated(self.path, 1))
        return self._current()[0]

    def _adopt(self) -> None:
        """In a forked child, forget the parent's descriptors (unlocked, never unlocking:
        that would release the parent's lock) and mutex (it may be copied held)."""
        if self._pid != os.getpid():
            self._forget()
            self._mutex = _thread.allocate_lock()
            self._pid = os.getpid()

    def _forget(self) -> None:
        self._tail = None
        for kept in (self._lock, self._log, self._head):
            kept.close()


class _Kept:
    """A descriptor kept open (close-on-exec) on the file at ``path``, with that file's
    identity: while it is open its inode cannot be reused, so a path that still stats
    to the same (st_dev, st_ino) names the same file."""

    __slots__ = ("fd", "flags", "ident", "path")

    def __init__(self, path: Path, flags: int) -> None:
        self.path = str(path)
        self.flags = flags | os.O_CREAT | os.O_CLOEXEC  # a launched command inherits none
        self.fd: int | None = None
        self.ident = (0, 0)

    def open(self) -> tuple[int, os.stat_result]:
        fd = os.open(self.path, self.flags, 0o600)
        st = os.fstat(fd)
        self.fd, self.ident = fd, (st.st_dev, st.st_ino)
        return fd, st

    def stat(self) -> os.stat_result | None:
        """The file at the path, if it is the one held open; None otherwise."""
        if self.fd is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st if (st.st_dev, st.st_ino) == self.ident else None

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def _unwritable(path: Path, exc: OSError) -> AuditError:
    return AuditError(
        f"cannot write audit log {path}: {exc.strerror or exc}{_which_disk(path, exc)}",
        hint="free space or fix permissions, or point CODEX_HOME elsewhere; "
        "nothing is launched without an audit record",
    )


def _which_disk(path: Path, exc: OSError) -> str:
    """For a full or read-only filesystem: which one (its mount point, and the space
    left), so the person fixing it knows which disk to free — CODEX_HOME is often on a
    different one from the workspace. Empty for other errors or where /proc is absent."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return ""
    # Only on this error path: the mount table's reader is the sandbox's own.
    from orchestrator.sandbox.linux.mounts import is_under, mountpoints

    try:
        real = os.path.realpath(path.parent)
        at = max((p for p in mountpoints() if is_under(real, p)), key=len)
        if exc.errno == errno.EROFS:
            return f" (the filesystem mounted at {at} is read-only)"
        info = os.statvfs(real)
    except (OSError, ValueError):
        return ""
    return f" (the filesystem mounted at {at} has {info.f_bavail * info.f_frsize} bytes free)"
