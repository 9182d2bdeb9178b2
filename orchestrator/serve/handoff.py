"""What passes between the service and a session's keeper for one run or exec: the exec
message, its result, and what happens around a pooled claim (the options a pool cannot
serve, spare copies of the run's ends, the sign of a sandbox that could not start the
command, the claim's workspace emptied, the cancel).

Owns: those small pieces, so ``service`` keeps to the life of what the server holds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
from collections.abc import Mapping
from typing import Any

from .models import ExecBody, RunBody, SessionBody


def fixed_options(body: RunBody | SessionBody) -> bool:
    """Options a pooled sandbox was started without (so: a cold start)."""
    return (
        any(
            getattr(body, f) is not None for f in ("image", "memory", "pids", "cpus", "policy_mode")
        )
        or body.trust
    )


def exec_message(body: RunBody | ExecBody, environ: Mapping[str, str]) -> dict[str, Any]:
    return {
        "op": "exec",
        "argv": list(body.argv),
        "environ": dict(environ),
        "env": list(body.env),
        "cwd": getattr(body, "cwd", None),
        "timeout": body.timeout,
        "approve": body.approve,
        "detach": False,
    }


def exec_result(event: dict[str, Any]) -> dict[str, Any]:
    data = dict(event["result"])
    data.setdefault("warnings", [])
    return data


class Spare:
    """Duplicates of a run's three ends, closed once (the pipes end only when every
    writer's copy is closed)."""

    def __init__(self, fds: tuple[int, int, int]) -> None:
        self.fds = (os.dup(fds[0]), os.dup(fds[1]), os.dup(fds[2]))
        self._closed = False
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def never_started(result: Mapping[str, Any]) -> bool:
    """The pooled sandbox failed before the command ran (its supervisor could not
    enter the workspace: seen, rarely, on a sandbox claimed right after it started
    under load; the cause is not known yet). Nothing ran, so running it cold is safe."""
    return result.get("exit_code") == 125 and str(result.get("detail", "")).startswith(
        "cannot enter "
    )


def emptied(workspace: str, result: dict[str, Any]) -> dict[str, Any]:
    """The claim's result, once its workspace is emptied (before its client has the
    answer: a later run, which can read the host's files, finds nothing of it; the
    sandbox itself is destroyed after). Never follows a link the sandbox planted."""
    with contextlib.suppress(OSError), os.scandir(workspace) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
    return {**result, "pooled": True}


def shut_write(sock: socket.socket) -> None:
    """The keeper sees its client's end: it kills the exec's tree and still answers."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
