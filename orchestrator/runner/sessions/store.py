"""Sessions on disk, typed: ``$CODEX_HOME/sessions/ID/`` (0700) with ``state.json``
(0600) and the keeper's control socket.

Owns: ``SessionState``, making a session's directory and writing its state atomically,
listing every session (live or dead), finding one as a ``SessionState``, and removing
what a dead session left (``gc``).
Does not own: the layout and the lookup rules (``locate``, which ``exec`` uses alone),
the keeper (``keeper``) or what a session does.

Only the user who started a session can use it: the directory is the user's, 0700,
and the keeper checks each peer's credentials as well (``keeper``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.core.errors import SandboxSetupError

from . import locate
from .locate import SOCKET, STATE, UnknownSession

STARTING_S = 60.0  # a directory this young with no state is a keeper still starting
__all__ = ["SOCKET", "STATE", "SessionState", "UnknownSession"]


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
    return Path(locate.sessions_dir(home))


def directory(home: Path, session_id: str) -> Path:
    return Path(locate.session_dir(home, session_id))


def _real_root(home: Path) -> Path:
    """CODEX_HOME/sessions, made if need be; never a symbolic link: a sandbox hides
    this path from its commands, and a link would hide the link, not the sockets (only
    the keeper's peer check would then stand)."""
    base = root(home)
    if base.is_symlink():
        raise SandboxSetupError(
            f"{base} is a symbolic link: sessions keep their sockets in a real directory",
            hint=f"remove the link (or point CODEX_HOME elsewhere): rm {base}",
        )
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    return base


@contextlib.contextmanager
def starting(home: Path) -> Iterator[None]:
    """Held while a session checks its name is free and records itself."""
    base = _real_root(home)
    fd = os.open(base / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def make_directory(home: Path, session_id: str) -> Path:
    base = _real_root(home)
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


def read_state(home: Path, session_id: str) -> SessionState | None:
    data = locate.read(home, session_id)
    try:
        return SessionState(**data) if data is not None else None
    except TypeError:  # not a state this version wrote
        return None


def alive(state: SessionState) -> bool:
    return locate.alive(asdict(state))


def all_sessions(home: Path) -> list[tuple[SessionState, bool]]:
    """Every session on record, live or not (a dead one until ``gc``), oldest first."""
    found = []
    for entry in locate.listed(home):
        if (state := read_state(home, entry)) is not None:
            found.append((state, alive(state)))
    return sorted(found, key=lambda pair: pair[0].created)


def find(home: Path, ref: str | None) -> SessionState:
    """The live session ``ref`` (an id or a name) names; ``UnknownSession`` otherwise."""
    session_id = locate.find_id(home, ref)
    state = read_state(home, session_id)
    if state is None:
        raise UnknownSession(f"session {ref!r} has no readable state", hint="`codex-box gc`")
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
    for entry in locate.listed(home):  # a directory with no readable state
        path = root(home) / entry
        with contextlib.suppress(FileNotFoundError):
            # (A keeper writes its state right after making the directory.)
            young = time.time() - path.stat().st_mtime < STARTING_S
            raw = locate.read(home, entry)  # another version's state: its keeper may run
            if raw is not None and locate.alive(raw):
                continue
            if read_state(home, entry) is None and not young:
                remove(home, entry)
                removed.append(f"session {entry} (no state)")
    return removed


open_directory = locate.open_directory
