"""What every CI driver does with a job's sessions: start them with a clean
environment, run one step in one with the CI system's cancel honoured, stop them.

Owns: the environment a CI job's sessions are started with (the host's basics, never
the runner's job variables), running a step through the session's keeper with SIGTERM
(the CI system cancelling or timing out the job) killing the step's whole process tree
at once, and stopping a job's sessions by name, idempotently.
Does not own: any CI system's protocol (``ci.gitlab``, ``ci.github``) or what the keeper
decides (``runner.sessions``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.core.errors import CodexBoxError
from orchestrator.runner.sessions import client, store
from orchestrator.runner.sessions.request import StartRequest
from orchestrator.runner.sessions.start import start

# The runner's variables (job tokens, masked variables, the job response's path) stay
# with the driver: a session's keeper and every step get only these from the host.
_BASICS = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR")
_ENGINE = ("DOCKER_HOST", "CONTAINER_HOST", "XDG_RUNTIME_DIR")
_OURS = ("CODEX_HOME", "CODEX_BOX_BACKEND", "CODEX_BOX_DEBUG", "CODEX_BOX_IMAGE")
STOP_WAIT_S = 30.0


class Terminated(BaseException):
    """SIGTERM reached the driver: the CI system cancelled the job or it timed out."""


def clean_environ(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: environ[k] for k in (*_BASICS, *_ENGINE, *_OURS) if k in environ}


@contextlib.contextmanager
def terminable() -> Iterator[None]:
    """Within: SIGTERM raises ``Terminated`` where the driver waits."""

    def raise_terminated(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the cleanup must finish
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def start_session(request: StartRequest) -> str:
    return str(start(request)["id"])


def step(
    home: Path,
    session_id: str,
    argv: Sequence[str],
    *,
    environ: Mapping[str, str],
    stdin: int,
    cwd: str | None = None,
    env: Sequence[str] = (),
    approve: bool = False,
) -> dict[str, Any]:
    """Run one step in the session, its output on ours; the keeper's result. On
    ``Terminated`` the keeper is told the caller is gone — it kills the step's whole
    tree and records the end as cancelled — and ``Terminated`` goes on."""
    message = {
        "op": "exec",
        "argv": list(argv),
        "environ": dict(environ),
        "env": list(env),
        "cwd": cwd,
        "timeout": None,
        "approve": approve,
        "detach": False,
    }
    sock = client.begin(home, session_id, message, stdio=(stdin, 1, 2))
    try:
        event = client.finish(sock)
    except Terminated:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)  # the keeper's cue: kill the tree now
            sock.settimeout(10.0)
            with contextlib.suppress(CodexBoxError, OSError):
                client.finish(sock)  # wait until it is dead (and recorded)
        raise
    finally:
        sock.close()
    return dict(event["result"])


def stop_named(home: Path, name: str) -> bool:
    """Stop the session called ``name`` (a dead one's record is removed); True when
    there was one. Safe for a session that never started or is already gone."""
    found = False
    for state, live in store.all_sessions(home):
        if state.name != name:
            continue
        found = True
        if live:
            with contextlib.suppress(CodexBoxError):
                client.request(home, state.id, {"op": "stop"})
            client.wait_stopped(home, state.id, timeout_s=STOP_WAIT_S)
        else:
            store.remove(home, state.id)
    return found


def stdin_of(text: str) -> int:
    """A descriptor reading ``text`` from its start: an unlinked file, so the text (a
    CI script holding the job's variables) never appears in a directory, in argv or in
    the audit log, and needs no writer thread however long it is."""
    import tempfile

    f = tempfile.TemporaryFile()  # noqa: SIM115 -- the descriptor outlives the object
    fd = os.dup(f.fileno())
    f.close()
    data = memoryview(text.encode("utf-8", "surrogateescape"))  # the script's own bytes
    while data:
        data = data[os.write(fd, data) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
