"""Optional copies of every audit record, for readers outside codex-box's reach.

Owns: the syslog sink (facility authpriv, so a host's log shipping picks it up) and the
second JSON Lines file (e.g. tailed by a SIEM agent). Each is failure-isolated: the
primary log's ``append`` logs a sink's failure at debug and goes on (``log``).
Does not own: the primary log or deciding which sinks are on (``[audit]`` in config,
read by ``settings``; the host context passes the choice in).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .log import Sink


def to_syslog(line: bytes) -> None:
    import syslog  # only when the syslog sink is configured: start-up time

    syslog.openlog("codex-box", syslog.LOG_PID, syslog.LOG_AUTHPRIV)
    syslog.syslog(syslog.LOG_INFO, line.decode("ascii", errors="replace").rstrip("\n"))


def to_jsonl(path: Path) -> Sink:
    def write(line: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    return write


def sinks_for(*, syslog: bool, jsonl: str | None) -> list[Sink]:
    chosen: list[Sink] = []
    if syslog:
        chosen.append(to_syslog)
    if jsonl:
        chosen.append(to_jsonl(Path(jsonl)))
    return chosen
