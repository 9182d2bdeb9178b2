"""Where sessions live on disk: ``$CODEX_HOME/sessions/ID/`` (0700) with ``state.json``
(0600) and the keeper's control socket, and how a session is found again.

Owns: the layout, writing a session's state atomically, finding a session by id or
name (never "the latest"), whether its keeper still lives (pid *and* start time: a
recycled pid is not the keeper), and removing what a dead session left.
Does not own: the keeper (``keeper``) or what a session does.

Only the user who started a session can use it: the directory is the user's, 0700,
and the keeper checks each peer's credentials as well (``keeper``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.core.errors import CodexBoxError
from orchestrator.core.session import ID_PATTERN
from orchestrator.sandbox.linux.proctree import start_time

STATE = "state.json"
SOCKET = "control.sock"
STARTING_S = 60.0


class UnknownSession(CodexBoxError):
    """No live session answers to that id or name (exit 125, as the issue asks)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionState:
    id: str
    name: str | None
    profile: str
    backend: str
    workspace: str
    created: str  # UTC, ISO 8601
    expires: str  # when its max lifetime ends
    idle_timeout_s: float
    max_lifetime_s: float
    keeper_pid: int
    keeper_start: str  # /proc/PID/stat start time of the keeper
    uid: int
    image: str | None = None

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        for private in ("keeper_pid", "keeper_start", "uid"):
            data.pop(private)
        return data


def root(home: Path) -> Path:
    return home / "sessions"


def directory(home: Path, session_id: str) -> Path:
    return root(home) / session_id


def make_directory(home: Path, session_id: str) -> Path:
    base = root(home)
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(base, 0o700)  # an older, wider one is narrowed
    path = base / session_id
    path.mkdir(mode=0o700)
    return path


def write_state(home: Path, state: SessionState) -> None:
    path = directory(home, state.id) / STATE
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(state), handle)
    os.replace(temporary, path)


def read_state(path: Path) -> SessionState | None:
    try:
        with open(path / STATE, encoding="utf-8") as handle:
            data = json.load(handle)
        return SessionState(**data)
    except (OSError, ValueError, TypeError):
        return None


def alive(state: SessionState) -> bool:
    return start_time(state.keeper_pid) == state.keeper_start


def all_sessions(home: Path) -> list[tuple[SessionState, bool]]:
    """Every session on record, live or not (a dead one until ``gc``), oldest first."""
    found = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(root(home)):
            if ID_PATTERN.match(entry) and (state := read_state(root(home) / entry)):
                found.append((state, alive(state)))
    return sorted(found, key=lambda pair: pair[0].created)


def find(home: Path, ref: str | None) -> SessionState:
    """The live session ``ref`` (an id or a name) names; ``UnknownSession`` otherwise."""
    if not ref:
        raise UnknownSession(
            "no session given",
            hint="pass --session ID|NAME or set CODEX_BOX_SESSION "
            "(`codex-box session ls` lists them)",
        )
    if ID_PATTERN.match(ref):
        state = read_state(directory(home, ref))
        matches = [state] if state is not None else []
    else:
        matches = [s for s, live in all_sessions(home) if s.name == ref and live]
    if not matches:
        raise UnknownSession(
            f"unknown session {ref!r}",
            hint="`codex-box session ls` lists the live sessions; start one with "
            "`codex-box session start`",
        )
    state = matches[0]
    if not alive(state):
        raise UnknownSession(
            f"session {ref!r} has ended (its keeper is gone)",
            hint="start a new one; `codex-box gc` removes what it left",
        )
    return state


def socket_path(home: Path, session_id: str) -> str:
    return str(directory(home, session_id) / SOCKET)


def remove(home: Path, session_id: str) -> None:
    shutil.rmtree(directory(home, session_id), ignore_errors=True)


def sweep_dead(home: Path) -> list[str]:
    """Remove the directories of sessions whose keeper is gone (``gc``)."""
    removed = []
    for state, live in all_sessions(home):
        if not live:
            remove(home, state.id)
            removed.append(f"session {state.id} ({state.profile}, keeper gone)")
    with contextlib.suppress(FileNotFoundError):  # a directory with no readable state
        for entry in os.listdir(root(home)):
            path = root(home) / entry
            # (A keeper writes its state right after making the directory.)
            young = time.time() - path.stat().st_mtime < STARTING_S
            if ID_PATTERN.match(entry) and read_state(path) is None and not young:
                remove(home, entry)
                removed.append(f"session {entry} (no state)")
    return removed


def open_directory(home: Path, session_id: str) -> int:
    """An ``O_PATH`` descriptor of the session's directory: its socket is then reached
    as ``/proc/self/fd/N/control.sock``, whatever the length of CODEX_HOME (a Unix
    socket's path holds at most 107 bytes)."""
    return os.open(directory(home, session_id), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
