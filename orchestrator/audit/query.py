"""Reading the audit log back: filters, following it as it grows, and summaries.

Owns: ``Query`` (decision, operation, profile, session, since, until), reading every
file of the log oldest first (rotations included), ``follow`` (``audit tail -f``) and
``summarise``. Does not own: writing (``log``), the files' names and order (``chain``)
or checking the chain (``verify``).
A line that is not a record is yielded as one (operation ``unparseable``), never dropped.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.core.errors import AuditError, ConfigError

from .chain import log_files

TOP_DENIED = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    decision: str | None = None
    operation: str | None = None
    profile: str | None = None
    session: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, record: Mapping[str, Any]) -> bool:
        wanted = (
            ("decision", self.decision),
            ("operation", self.operation),
            ("profile", self.profile),
            ("session_id", self.session),
        )
        if any(value and record.get(key) != value for key, value in wanted):
            return False
        if self.since or self.until:
            when = timestamp_of(record)
            if when is None:
                return False
            if self.since and when < self.since:
                return False
            if self.until and when > self.until:
                return False
        return True


def of_filters(
    *,
    decision: str | None = None,
    operation: str | None = None,
    profile: str | None = None,
    session: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Query:
    """The query of ``codex-box audit``'s filters as given (times as ISO or an age)."""
    return Query(
        decision=decision,
        operation=operation,
        profile=profile,
        session=session,
        since=parse_time(since) if since else None,
        until=parse_time(until) if until else None,
    )


def timestamp_of(record: Mapping[str, Any]) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(record.get("timestamp")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """``2026-11-28``, ``2026-11-28T10:00:00Z``, or an age such as ``30m``, ``2h``, ``7d``."""
    match = re.fullmatch(r"(\d+)\s*([smhd])", text.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        try:
            return (now or datetime.now(UTC)) - timedelta(**{unit: int(match.group(1))})
        except (OverflowError, ValueError) as exc:  # before year 1, or 4300+ digits
            raise ConfigError(
                f"age {text[:40]!r} reaches back before year 1",
                hint="use an age such as 30m, 2h or 7d, or an ISO date/time",
            ) from exc
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"time {text!r} is not understood",
            hint="use an ISO date/time (2026-11-28T10:00Z) or an age (30m, 2h, 7d)",
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_line(line: str, *, number: int, file: Path) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # torn, a 5000-digit number, nested too deep
        record = None
    if not isinstance(record, dict):  # torn, overwritten or not a record at all
        return {"operation": "unparseable", "file": str(file), "line": number,
                "target": line[:200]}  # fmt: skip
    return record


def read(path: Path, query: Query) -> Iterator[dict[str, Any]]:
    """Records matching ``query``, oldest first, across the rotated files."""
    for file in log_files(path):
        try:
            handle = file.open(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue  # rotated away while we read
        except OSError as exc:
            raise AuditError(
                f"cannot read audit log {file}: {exc.strerror}", hint="check its permissions"
            ) from exc
        with handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    record = parse_line(line, number=number, file=file)
                    if query.matches(record):
                        yield record


def follow(
    path: Path,
    query: Query,
    *,
    poll_s: float = 0.2,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[dict[str, Any]]:
    """``tail -f``: new records as they are appended, across rotations, until ``stop``."""
    position, inode = _end_of(path)
    pending = b""
    while not stop():
        try:
            info = path.stat()
        except FileNotFoundError:
            time.sleep(poll_s)
            continue
        if info.st_ino != inode or info.st_size < position:  # rotated: start the new file
            position, inode, pending = 0, info.st_ino, b""
        if info.st_size > position:
            with path.open("rb") as handle:
                handle.seek(position)
                data = pending + handle.read(info.st_size - position)
                position = info.st_size
            *complete, pending = data.split(b"\n")
            for raw in complete:
                if raw.strip():
                    record = parse_line(raw.decode(errors="replace"), number=0, file=path)
                    if query.matches(record):
                        yield record
        else:
            time.sleep(poll_s)


def _end_of(path: Path) -> tuple[int, int]:
    try:
        info = path.stat()
    except FileNotFoundError:
        return 0, -1
    return info.st_size, info.st_ino


def summarise(records: Iterator[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts by decision, profile and operation, and the most often denied targets."""
    by_decision: Counter[str] = Counter()
    by_profile: Counter[str] = Counter()
    by_operation: Counter[str] = Counter()
    denied: Counter[str] = Counter()
    total = 0
    first = last = None
    for record in records:
        total += 1
        first = first or record.get("timestamp")
        last = record.get("timestamp") or last
        by_decision[str(record.get("decision", "-"))] += 1
        by_profile[str(record.get("profile", "-"))] += 1
        by_operation[str(record.get("operation", "-"))] += 1
        if record.get("decision") == "denied":
            denied[str(record.get("target", "-"))] += 1
    return {
        "records": total,
        "from": first,
        "to": last,
        "by_decision": dict(by_decision.most_common()),
        "by_profile": dict(by_profile.most_common()),
        "by_operation": dict(by_operation.most_common()),
        "top_denied": [{"target": t, "count": n} for t, n in denied.most_common(TOP_DENIED)],
    }
