"""Starting a session: spawn its keeper and wait for it to say the sandbox is ready.

Owns: the keeper's process (a fresh ``python -I``, in a session of its own so the
terminal's Ctrl-C and the caller's exit do not end it; every descriptor of ours closed
but the two pipes), handing it the start request, and reading back its one answer.
Why a fresh interpreter and not a fork: the caller may have threads (the Python API,
a server), and a fork of such a process could copy a lock one of them holds.
Does not own: what the keeper does (``keeper``).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

from orchestrator.core.errors import CodexBoxError, SandboxSetupError

from .request import StartRequest

READY_S = 120.0  # a container engine pulling nothing still needs a few seconds


def start(request: StartRequest) -> dict[str, object]:
    """The new session's public state; raises the keeper's own error when it failed."""
    process = subprocess.Popen(
        [sys.executable, "-I", "-m", "orchestrator.runner.sessions.keeper"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        # Its log (CODEX_BOX_DEBUG) goes where ours does; else nowhere: it outlives us.
        stderr=None if request.environ.get("CODEX_BOX_DEBUG") else subprocess.DEVNULL,
        close_fds=True,
        start_new_session=True,
        env=request.environ,
        cwd="/",  # the request carries the caller's; the keeper holds no directory busy
    )
    assert process.stdin is not None and process.stdout is not None  # noqa: S101 -- PIPE
    with process.stdin:
        process.stdin.write(json.dumps(request.to_json()).encode())
    # Not communicate(): it would also wait for the keeper to exit, which it does not.
    out, deadline = b"", time.monotonic() + READY_S
    with process.stdout:
        while chunk := _read(process.stdout.fileno(), deadline):
            out += chunk
    if time.monotonic() >= deadline and not out:
        process.kill()
        raise SandboxSetupError(
            f"the session's keeper did not answer within {READY_S:g}s", hint="nothing was run"
        )
    try:
        answer = json.loads(out) if out.strip() else {}
    except ValueError:
        answer = {}
    if "session" in answer:
        return dict(answer["session"])
    error = CodexBoxError(
        str(answer.get("error") or f"the session's keeper ended (status {process.poll()})"),
        hint=str(answer.get("hint") or "nothing was run; rerun with CODEX_BOX_DEBUG=1"),
    )
    error.exit_code = int(answer.get("exit_code", 125))
    raise error


def _read(fd: int, deadline: float) -> bytes:
    """The next chunk of the keeper's answer; b"" at its end or at the deadline."""
    if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
        return b""
    return os.read(fd, 65536)
