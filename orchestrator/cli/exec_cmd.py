"""The body of ``codex-box exec``, without its command line: one ``ExecArgs`` → the
session's keeper → what is printed and the exit code.

Shared by the Typer verb (``cli.session``) and the fast path (``cli.exec_fast``).
Imports no Typer and no runner: an exec's whole cost on this side is reaching the
keeper, which already holds the profile, the policy and the audit log.
"""

from __future__ import annotations

import os

from orchestrator.core.errors import CodexBoxError
from orchestrator.core.paths import codex_home_dir
from orchestrator.runner.sessions import client, locate

from .exec_fast import ExecArgs
from .output import confirm_on_tty, echo, emit_json, fail, usage

TYPE_CHECKING = False  # no `typing` on `exec`'s path (orchestrator/__init__)
if TYPE_CHECKING:
    from typing import NoReturn

SESSION_ENV = "CODEX_BOX_SESSION"


def fixed_flag(flag: str) -> NoReturn:
    usage(
        f"{flag} cannot be given to exec: a session's profile, workspace, backend and "
        "image are fixed when it starts — start another session for different ones"
    )


def execute(args: ExecArgs) -> int:
    if not args.command:
        usage("no command given — put it after --, e.g. codex-box exec -- make test")
    server = args.server or os.environ.get("CODEX_BOX_SERVER")
    if server:
        from . import remote  # the API client only when a server is asked for

        return remote.exec_(args, server)
    _open_stdio()
    environ = dict(os.environ)
    home = codex_home_dir(environ)
    try:
        # Never "the latest": the session named, or the one this shell is in.
        session_id = locate.find_id(home, args.session or environ.get(SESSION_ENV))
        event = client.execute(
            home,
            session_id,
            {
                "op": "exec",
                "argv": list(args.command),
                "environ": environ,
                "env": list(args.env),
                "cwd": args.cwd,
                "timeout": args.timeout,
                "approve": args.approve,
                "detach": args.detach,
            },
            confirm=confirm_on_tty,
        )
    except CodexBoxError as exc:
        fail(exc)
    result = event["result"]
    for warning in result.get("warnings") or ():  # the post-exec check: planted repositories
        echo(f"codex-box: warning: {warning}", err=True)
    if args.detach:
        echo(
            f"codex-box: detached {result['run_id']} (codex-box session show {session_id})",
            err=True,
        )
    elif result.get("detail") and (
        result["exit_code"] in (124, 125, 126, 127) or result.get("oom_killed")
    ):
        echo(f"codex-box: {result['detail']}", err=True)
    if args.as_json:
        emit_json(result, err=True)
    return int(result["exit_code"])


def _open_stdio() -> None:
    """A closed stdin, stdout or stderr becomes /dev/null, as for a daemon: the command
    gets an empty input and a sink, and nothing else of ours lands on 0, 1 or 2."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
