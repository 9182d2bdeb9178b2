"""What a ``codex-box serve`` made, on disk, so that nothing outlives it — even a SIGKILL.

Owns: ``$CODEX_HOME/serve/owned/<id>.json``, one record per thing the server made that a
crash would leave behind (a pooled or scratch workspace directory, a session it
started), written *before* the thing exists and removed after it is gone; the
workspaces root (created 0700, refused when it is a symlink, not ours, or writable by
others: a workspace there is bind-mounted writable into sandboxes); the server's lock
(one server per CODEX_HOME); and ``sweep``: stop and remove everything on record, which
the next ``serve`` and ``codex-box gc`` (when no server holds the lock) do.
Does not own: pools (``pools``) or sessions (``sessions``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any

from orchestrator.core.errors import CodexBoxError, ConfigError

from .sessions import client, store

LOCK_NAME = "serve.lock"
# The only directories a sweep removes: those named as ``new_workspace`` names them (a
# record that says otherwise was not written by us and is not obeyed).
_WORKSPACE_NAME = re.compile(r"(pool|scratch)-[0-9a-f]{12}")


def state_dir(home: Path) -> Path:
    return home / "serve"


def _records(home: Path) -> Path:
    return state_dir(home) / "owned"


def hold_lock(home: Path) -> int:
    """The server's lock (kept until the process ends); ``CodexBoxError`` when another
    server of this CODEX_HOME holds it."""
    directory = state_dir(home)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise CodexBoxError(
            f"another `codex-box serve` already serves {home}",
            hint="stop it first, or give this one another CODEX_HOME",
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def server_running(home: Path) -> bool:
    try:
        fd = os.open(state_dir(home) / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def workspace_root(path: str) -> Path:
    """The root of pooled and scratch workspaces, made if missing; refused unless it is
    a real directory of ours that nobody else can write."""
    root = Path(path)
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o700, parents=True)
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise ConfigError(
            f"serve.workspaces {root} is not a directory of yours that only you can write",
            hint="remove it, or set [serve] workspaces to a directory of your own (mode 0700)",
        )
    return root


def new_workspace(
    home: Path, root: Path, *, kind: str, session_name: str | None = None
) -> tuple[Path, str]:
    """A fresh, empty workspace directory and its record (written first), with the name
    of the session about to use it (default: the record's own, as a pool names them)."""
    name = f"{kind}-{os.urandom(6).hex()}"
    workspace = root / name
    data = {"workspace": str(workspace), "session": None, "name": session_name}
    record = _write(home, name, data)
    workspace.mkdir(mode=0o700)
    return record, str(workspace)


def new_session_record(home: Path, name: str | None = None) -> Path:
    """The record of a session the server is about to start (its id noted once known;
    its name, when it has one, already: a server killed mid-start left it by name)."""
    data = {"workspace": None, "session": None, "name": name}
    return _write(home, f"session-{os.urandom(6).hex()}", data)


def note_session(record: Path, session_id: str) -> None:
    data = _read(record) or {}
    _write_at(record, {**data, "session": session_id})


def forget(record: Path) -> None:
    """The thing is gone: remove the workspace its record names (never following a
    symlink the sandbox planted in it), then the record."""
    workspace = (_read(record) or {}).get("workspace")
    if isinstance(workspace, str) and _WORKSPACE_NAME.fullmatch(os.path.basename(workspace)):
        shutil.rmtree(workspace, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        record.unlink()


def sweep(home: Path) -> list[str]:
    """Stop and remove everything on record, and the default socket (the server that
    made them is gone: the caller holds its lock, or saw it free)."""
    removed = []
    directory = _records(home)
    for record in sorted(directory.glob("*.json")) if directory.is_dir() else ():
        data = _read(record) or {}
        session = data.get("session")
        if not isinstance(session, str):  # killed while it started: find it by its name
            session = _named(home, data.get("name") or record.stem)
        if isinstance(session, str) and _stop(home, session):
            removed.append(f"serve: stopped session {session}")
        forget(record)
        removed.append(f"serve: removed {record.stem}")
    socket_path = home / "serve.sock"  # the default one (a --socket elsewhere: its owner's)
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(os.lstat(socket_path).st_mode):
            socket_path.unlink()
            removed.append(f"serve: removed the socket of a server that is gone ({socket_path})")
    return removed


def _named(home: Path, name: str) -> str | None:
    """The live session called ``name`` (a pool's is its record's stem), if any."""
    for state, live in store.all_sessions(home):
        if live and state.name == name:
            return state.id
    return None


def _stop(home: Path, session_id: str) -> bool:
    state = store.read_state(home, session_id)
    if state is None or not store.alive(state):
        return False
    with contextlib.suppress(CodexBoxError, OSError):
        client.request(home, session_id, {"op": "stop"})
        client.wait_stopped(home, session_id, timeout_s=15.0)
    return True


def _write(home: Path, name: str, data: dict[str, Any]) -> Path:
    directory = _records(home)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    record = directory / f"{name}.json"
    _write_at(record, data)
    return record


def _write_at(record: Path, data: dict[str, Any]) -> None:
    partial = record.with_suffix(".tmp")
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(partial, record)


def _read(record: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
