"""The audit log: append-only JSON Lines, sanitized, locked, fsync'd.

Owns: writing records (one when a launch is decided, one when it ends) and reading
them back with filters. Does not own: deciding what to record (``runner``).

Each append takes an exclusive ``flock``, writes the whole line with one ``O_APPEND``
write, and fsyncs before unlocking: concurrent codex-box processes never interleave
or lose lines, and a record that was reported written survives a crash. If the log
cannot be written, the caller must not launch.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import AuditError, ConfigError

DECISIONS = ("allowed", "denied", "requires_approval")
OPERATIONS = ("command_exec", "approval")
LOG_NAME = "audit.log"


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Sanitizer:
    """Replaces the user's home directory and name with ``[USER]`` (seed: privacy-aware)."""

    user: str
    home: str

    def __call__(self, text: str) -> str:
        home = self.home.rstrip("/")
        if home and home != "/":
            text = re.sub(re.escape(home) + r"(?![\w.-])", "[USER]", text)
        if self.user:
            text = re.sub(rf"(?<![\w.-]){re.escape(self.user)}(?![\w-])", "[USER]", text)
        return text


class AuditLog:
    def __init__(self, path: Path, *, sanitizer: Sanitizer) -> None:
        self.path = path
        self.sanitize = sanitizer

    def append(self, record: Mapping[str, Any]) -> None:
        clean = {
            k: self.sanitize(v)
            if k in ("target", "workspace", "reason", "policy_reason") and isinstance(v, str)
            else v
            for k, v in record.items()
        }
        # ASCII: argv that is not valid UTF-8 (surrogate escapes) must not lose the record.
        line = (json.dumps({"timestamp": now_utc(), **clean}, ensure_ascii=True) + "\n").encode()
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise _unwritable(self.path, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            raise _unwritable(self.path, exc) from exc
        finally:
            os.close(fd)  # closing releases the lock


def _unwritable(path: Path, exc: OSError) -> AuditError:
    return AuditError(
        f"cannot write audit log {path}: {exc.strerror or exc}",
        hint="free space or fix permissions, or point CODEX_HOME elsewhere; "
        "nothing is launched without an audit record",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    decision: str | None = None
    operation: str | None = None
    session: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, record: Mapping[str, Any]) -> bool:
        if self.decision and record.get("decision") != self.decision:
            return False
        if self.operation and record.get("operation") != self.operation:
            return False
        if self.session and record.get("session_id") != self.session:
            return False
        if self.since or self.until:
            try:
                when = datetime.fromisoformat(str(record.get("timestamp")).replace("Z", "+00:00"))
            except ValueError:
                return False
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            if self.since and when < self.since:
                return False
            if self.until and when > self.until:
                return False
        return True


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """``2026-11-28``, ``2026-11-28T10:00:00Z``, or an age such as ``30m``, ``2h``, ``7d``."""
    match = re.fullmatch(r"(\d+)\s*([smhd])", text.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: int(match.group(1))})
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"time {text!r} is not understood",
            hint="use an ISO date/time (2026-11-28T10:00Z) or an age (30m, 2h, 7d)",
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def read(path: Path, query: Query) -> Iterator[dict[str, Any]]:
    """Records matching ``query``, oldest first. A line that is not JSON is reported as
    a record of its own (operation ``unparseable``) rather than silently dropped."""
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise AuditError(
            f"cannot read audit log {path}: {exc.strerror}", hint="check its permissions"
        ) from exc
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict):  # torn, overwritten or not a record at all
                record = {"operation": "unparseable", "line": number, "target": line[:200]}
            if query.matches(record):
                yield record
