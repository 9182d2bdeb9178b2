"""Checking the audit log's hash chain: ``codex-box audit verify``.

Owns: walking every file of the log oldest first and reporting the first record that
is broken (edited: its successor's ``prev`` no longer matches), missing (deleted or
reordered: ``seq`` or ``prev`` skips) or cut off the end (``audit.head`` names a record
the log no longer holds), and torn lines (a write interrupted by a crash, closed off by
the next writer: reported, never silently skipped).
Does not own: writing (``log``), the files' names and the head's format (``chain``) or
reading with filters (``query``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .chain import GENESIS, line_hash, log_files, read_head


@dataclass(slots=True)
class Report:
    records: int = 0
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the chain is broken: tampering
    torn: list[str] = field(default_factory=list)  # interrupted writes (crash), chain intact
    first_seq: int | None = None  # where the kept history starts (older files rotated away)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "records": self.records,
            "files": self.files,
            "first_seq": self.first_seq,
            "problems": self.problems,
            "torn": self.torn,
        }


def verify(path: Path) -> Report:
    report = Report()
    prev_hash: str | None = None  # None: the oldest kept record anchors the chain
    prev_seq: int | None = None
    files = log_files(path)
    single = len(files) == 1  # rotation always keeps at least one older file
    for file in files:
        report.files.append(str(file))
        data = file.read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline
        if tail:
            report.torn.append(f"{file}:{len(lines) + 1}: torn record at the end (no newline)")
        for number, raw in enumerate(lines, 1):
            where = f"{file}:{number}"
            if not raw.strip():
                report.problems.append(f"{where}: empty line")
                continue
            record = _parse(raw)
            if record is None:
                report.torn.append(f"{where}: torn or unparseable line, skipped by the chain")
                continue
            seq, prev = record.get("seq"), record.get("prev")
            if not isinstance(seq, int) or not isinstance(prev, str):
                report.problems.append(f"{where}: not a chained record (no seq/prev)")
                continue
            if prev_hash is None:
                report.first_seq = seq
                if seq == 1 and prev != GENESIS:
                    report.problems.append(f"{where}: first record does not start the chain")
                elif seq != 1 and single:  # history starts later only after a rotation
                    report.problems.append(
                        f"{where}: first record does not start the chain: records before "
                        f"seq {seq} are missing"
                    )
            elif prev != prev_hash:
                expected = (prev_seq or 0) + 1
                what = (
                    "the record before it was changed"
                    if seq == expected
                    else f"records are missing or out of order (seq {seq}, expected {expected})"
                )
                report.problems.append(f"{where}: chain broken at seq {seq}: {what}")
            elif seq != (prev_seq or 0) + 1:
                report.problems.append(f"{where}: seq {seq} follows seq {prev_seq}")
            prev_hash, prev_seq = line_hash(raw), seq
            report.records += 1
    _check_head(path, prev_seq, prev_hash, report)
    return report


def _check_head(path: Path, last_seq: int | None, last_hash: str | None, report: Report) -> None:
    head = read_head(path)  # fixed-width, space-padded (chain)
    if head is None:
        return  # no head yet (or unreadable, torn): the chain alone is checked
    seq, digest = head
    if last_seq is None or seq > last_seq:
        report.problems.append(
            f"{path}: the log ends at seq {last_seq or 0} but record {seq} was written: "
            "records were cut off the end"
        )
    elif seq == last_seq and digest != last_hash:
        report.problems.append(f"{path}: the last record (seq {seq}) was changed")


def _parse(raw: bytes) -> dict[str, object] | None:
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):  # nested deeper than json can read: not a record
        return None
    return record if isinstance(record, dict) else None
