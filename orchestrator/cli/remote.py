"""``--server`` (or ``CODEX_BOX_SERVER``): ``run``, ``exec`` and ``session …`` through a
running ``codex-box serve`` instead of in this process.

Owns: turning the verbs' arguments into API requests (``orchestrator.client``) and the
answers into what the verb prints and exits with locally — output streamed to our
stdout/stderr byte for byte, the exit code passed through, a refusal as the same one
line and exit code. The differences, by necessity: the command's environment is the
server's (through the profile's filter), a ``--env NAME`` takes NAME's value from here;
stdin is sent only when it is a file or a pipe, read to its end before the command
starts (a terminal cannot be relayed: ``--tty`` is refused).
Does not own: any decision (the server's runner and keepers make them all).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.client import SERVER_ENV, Client, Result, ServerError
from orchestrator.core.errors import CodexBoxError

from .exec_fast import ExecArgs
from .fast import RunArgs
from .output import echo, emit_json, fail, usage

MAX_STDIN = 16 * 1024 * 1024


def address(flag: str | None, environ: Mapping[str, str]) -> str | None:
    """The server to use: ``--server``, else ``CODEX_BOX_SERVER``, else None (local)."""
    return flag or environ.get(SERVER_ENV) or None


def run(args: RunArgs, server: str) -> int:
    if args.tty:
        usage("--tty cannot go through --server: a terminal is not relayed over the API")
    if args.print_spec:
        usage("--print-spec shows this machine's launch; run it without --server")
    fields = {
        "profile": args.profile,
        "backend": args.backend,
        "image": args.image,
        "workspace": os.path.abspath(args.workspace or "."),
        "env": _env(args.env, os.environ) or None,
        "timeout": args.timeout,
        "memory": args.memory,
        "pids": args.pids,
        "cpus": args.cpus,
        "approve": args.approve or None,
        "policy_mode": args.policy_mode,
        "trust": args.trust or None,
        "stdin": _stdin(),
    }
    return _finish(
        lambda api: api.run(args.command, on_output=_write, **fields), server, args.as_json
    )


def exec_(args: ExecArgs, server: str) -> int:
    if args.detach:
        usage("--detach cannot go through --server yet; run it without --server")
    session = args.session or os.environ.get("CODEX_BOX_SESSION_ID")
    if not session:
        usage("--session is required with --server (the server cannot see this shell)")
    fields = {
        "cwd": args.cwd,
        "env": _env(args.env, os.environ) or None,
        "timeout": args.timeout,
        "approve": args.approve or None,
        "stdin": _stdin(),
    }
    return _finish(
        lambda api: api.exec(session, args.command, on_output=_write, **fields),
        server,
        args.as_json,
    )


def _finish(call: Any, server: str, as_json: bool) -> int:
    try:
        result: Result = call(Client(server))
    except ServerError as exc:
        fail(exc)
    for warning in result.warnings:
        echo(f"codex-box: warning: {warning}", err=True)
    if result.detail and result.exit_code in (124, 125, 126, 127):
        echo(f"codex-box: {result.detail}", err=True)
    if as_json:
        emit_json(dict(result.raw), err=True)
    return result.exit_code


def session_call(server: str, method: str, *args: Any, **fields: Any) -> Any:
    try:
        return getattr(Client(server), method)(*args, **fields)
    except CodexBoxError as exc:
        fail(exc)


def _write(name: str, data: bytes) -> None:
    stream = sys.stdout if name == "stdout" else sys.stderr
    stream.buffer.write(data)
    stream.buffer.flush()


def _env(entries: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """NAME=VALUE as given; a bare NAME takes its value from here (as a local run
    would pass it through), and is left out when it is not set here."""
    given = []
    for entry in entries:
        if "=" in entry:
            given.append(entry)
        elif entry in environ:
            given.append(f"{entry}={environ[entry]}")
    return given


def _stdin() -> str | None:
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return None
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        return None  # a terminal, a socket, /dev/null: nothing to send
    data = os.read(0, MAX_STDIN + 1) if stat.S_ISREG(mode) else _read_all(MAX_STDIN + 1)
    if len(data) > MAX_STDIN:
        usage(f"stdin is over {MAX_STDIN} bytes, the most --server sends")
    if not data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        usage("stdin is not UTF-8 text; --server sends text only (use a file in the workspace)")


def _read_all(limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit and (chunk := os.read(0, 65536)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
