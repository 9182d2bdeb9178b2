"""``codex-box serve``: the local API, in the foreground (``orchestrator.serve``).

Part of the command line: the options as Typer reads them. Owns nothing the server does.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from orchestrator.core.errors import CodexBoxError

from .output import fail


def serve(
    socket_path: Annotated[
        str | None,
        typer.Option(
            "--socket", help="The Unix socket (default $CODEX_HOME/serve.sock, mode 0600)."
        ),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(help="Also listen on loopback TCP, e.g. 127.0.0.1:8765 (needs --token-file)."),
    ] = None,
    token_file: Annotated[
        str | None, typer.Option(help="The bearer token TCP clients must send (a 0600 file).")
    ] = None,
    max_concurrent: Annotated[
        int | None,
        typer.Option(
            min=1, max=256, help="Runs and execs at once (default [serve] max_concurrent, 8)."
        ),
    ] = None,
) -> None:
    """Serve the API (runs, sessions, check, profiles, audit, metrics) until SIGTERM or
    Ctrl-C, which end every run and session it holds within 10 s. Exit 0 then; 2 for a
    bad option, 125 when it cannot start (bad config.toml, another server, a busy socket)."""
    try:
        from orchestrator.serve.server import ServeOptions
        from orchestrator.serve.server import serve as run_server
    except ImportError as exc:  # pragma: no cover -- an install without the server's packages
        raise typer.BadParameter(f"the server's packages are not installed ({exc})") from exc
    options = ServeOptions(
        socket_path=socket_path, listen=listen, token_file=token_file, max_concurrent=max_concurrent
    )
    try:
        code = run_server(options, os.environ)
    except CodexBoxError as exc:
        fail(exc)
    raise typer.Exit(code)
