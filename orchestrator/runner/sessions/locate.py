"""Finding a live session from an id or a name: the whole of what ``codex-box exec``
does on disk before it talks to the session's keeper.

Owns: where a session's directory, state and socket are (``$CODEX_HOME/sessions/ID/``),
reading its state as plain JSON, whether its keeper still lives (pid *and* start time:
a recycled pid is not the keeper), and the errors for no session, an unknown one and
one that ended. Never "the latest" session. Loads only ``os``, ``json`` and what the
process tree needs: ``exec``'s start-up is part of every exec's cost.
Does not own: the typed state and gc (``store``), talking to the keeper (``client``).
"""

from __future__ import annotations

import json
import os

from orchestrator.core.errors import CodexBoxError
from orchestrator.sandbox.linux.proctree import start_time, stat_field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATE = "state.json"
SOCKET = "control.sock"
_HEX = frozenset("0123456789abcdef")


class UnknownSession(CodexBoxError):
    """No live session answers to that id or name (exit 125, as the issue asks)."""


def is_id(text: str) -> bool:
    """``runner.context.new_id()``'s shape (``core.session.ID_PATTERN``, without ``re``)."""
    return len(text) == 12 and set(text) <= _HEX


def sessions_dir(home: str | os.PathLike[str]) -> str:
    return os.path.join(os.fspath(home), "sessions")


def session_dir(home: str | os.PathLike[str], session_id: str) -> str:
    return os.path.join(sessions_dir(home), session_id)


def read(home: str | os.PathLike[str], session_id: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(session_dir(home, session_id), STATE), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def alive(state: dict[str, Any]) -> bool:
    """Its keeper runs: the pid lives, started when the state says (not a recycled
    pid), and is not a zombie (a SIGKILLed keeper the host's init has not reaped yet)."""
    pid = state.get("keeper_pid")
    if not isinstance(pid, int):
        return False
    return start_time(pid) == state.get("keeper_start") and stat_field(pid, 0) not in ("Z", "X")


def listed(home: str | os.PathLike[str]) -> list[str]:
    try:
        return [entry for entry in os.listdir(sessions_dir(home)) if is_id(entry)]
    except FileNotFoundError:
        return []


def find_id(home: str | os.PathLike[str], ref: str | None) -> str:
    """The id of the live session ``ref`` (an id or a name) names."""
    if not ref:
        raise UnknownSession(
            "no session given",
            hint="pass --session ID|NAME or set CODEX_BOX_SESSION "
            "(`codex-box session ls` lists them)",
        )
    if is_id(ref):
        found = [state] if (state := read(home, ref)) is not None else []
    else:
        states = (read(home, one) for one in listed(home))
        found = [s for s in states if s is not None and s.get("name") == ref and alive(s)]
    if not found:
        raise UnknownSession(
            f"unknown session {ref!r}",
            hint="`codex-box session ls` lists the live sessions; start one with "
            "`codex-box session start`",
        )
    if not alive(found[0]):
        raise UnknownSession(
            f"session {ref!r} has ended (its keeper is gone)",
            hint="start a new one; `codex-box gc` removes what it left",
        )
    return str(found[0]["id"])


def open_directory(home: str | os.PathLike[str], session_id: str) -> int:
    """An ``O_PATH`` descriptor of the session's directory: its socket is then reached
    as ``/proc/self/fd/N/control.sock``, whatever the length of CODEX_HOME (a Unix
    socket's path holds at most 107 bytes)."""
    return os.open(session_dir(home, session_id), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
