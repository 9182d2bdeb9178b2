"""The ends of the audit log's hash chain: its files, its newest record, ``audit.head``.

Owns: how the files of one log are named and ordered (``audit.log.N … audit.log.1,
audit.log``), the chain's hash of a line, finding the newest complete record (the tail
a writer chains to) and the format of ``audit.head``. Does not own: writing records
(``log``), walking or checking the whole chain (``verify``), filtering (``query``).

``audit.head`` is one fixed-width line, ``{"seq": N, "hash": "…"}`` padded with spaces
to ``HEAD_WIDTH`` bytes: a writer overwrites it in place, never truncates it (on ext4
truncating and rewriting a file forces a flush of its data: an fsync's worth of time
on every append), and a shorter record never leaves stale bytes behind a longer one.
JSON ignores the padding, so a head written before the padding reads the same.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

GENESIS = "0" * 64  # `prev` of the very first record
HEAD_NAME = "audit.head"
HEAD_WIDTH = 128  # bytes, newline included; a 20-digit seq still fits
_TAIL_CHUNK = 4096  # most records fit; a longer last line widens the read


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


def last_record(path: Path) -> tuple[int, str, bool]:
    """(seq, hash) of the newest whole record, in the log or else its rotations, and
    whether the current log ends in a torn (unterminated) line."""
    torn_here = False
    for candidate in reversed(log_files(path)):
        found, torn = _last_in(candidate)
        torn_here = torn_here or (torn and candidate == path)
        if found is not None:
            return found[0], found[1], torn_here
    return 0, GENESIS, torn_here


def last_line(fd: int, size: int) -> tuple[int, str] | None:
    """(seq, hash) of the last line of the open file (``size`` bytes) when it is a whole
    record, read with one pread: the common case when another writer appended since.
    None (empty, torn, unparseable, a line longer than the read) leaves it to
    ``last_record``, which gives the same answer whenever this one gives one."""
    chunk = min(size, _TAIL_CHUNK)
    data = os.pread(fd, chunk, size - chunk)
    if not data.endswith(b"\n"):
        return None
    start = data.rfind(b"\n", 0, len(data) - 1) + 1
    if start == 0 and chunk < size:
        return None  # the line may begin before what was read
    seq = _seq_of(data[start:])
    return None if seq is None else (seq, line_hash(data[start:]))


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
            # The unterminated end counts when it is a whole record: a write the kernel
            # stopped (kill -9) just before its newline. Chained to, it is not forked.
            for line in reversed(lines if start == 0 else lines[1:]):
                parsed = _seq_of(line)
                if parsed is not None:
                    return (parsed, line_hash(line)), torn
            if start == 0:
                return None, torn
            start = max(0, start - _TAIL_CHUNK * 4)


def _seq_of(line: bytes) -> int | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # a torn or damaged line: not a record
        return None
    seq = record.get("seq") if isinstance(record, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def head_line(seq: int, digest: str) -> bytes:
    """What ``audit.head`` holds when it names record ``seq`` (whose line hashes to
    ``digest``): exactly HEAD_WIDTH bytes, padding and newline included."""
    text = f'{{"seq": {int(seq)}, "hash": {json.dumps(digest)}}}'  # json.dumps' spelling
    return text.ljust(HEAD_WIDTH - 1).encode() + b"\n"


def parse_head(data: bytes) -> tuple[int, str] | None:
    """(seq, hash) named by the bytes of ``audit.head``, or None when they name no record
    (empty, torn, stale bytes after it, not this format)."""
    try:
        head = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError included; nested too deep
        return None
    if not isinstance(head, dict):
        return None
    seq, digest = head.get("seq"), head.get("hash")
    if not isinstance(seq, int) or isinstance(seq, bool):
        return None
    return seq, digest if isinstance(digest, str) else ""  # "": matches no record


def read_head(path: Path) -> tuple[int, str] | None:
    """(seq, hash) of the record ``audit.head`` beside the log ``path`` names, if any."""
    try:
        return parse_head(path.with_name(HEAD_NAME).read_bytes())
    except OSError:
        return None
