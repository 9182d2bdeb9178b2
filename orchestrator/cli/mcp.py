"""``codex-box mcp``: codex-box's sandbox as MCP tools for an AI agent, on stdio
(``orchestrator.mcp``).

Part of the command line: the options as Typer reads them, the one ``HostContext`` (its
session id is the MCP session's, so every record of this server carries it). Owns
nothing the server does. stdout is the protocol: nothing of ours is printed there.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from orchestrator.core.errors import CodexBoxError

from .output import fail, merge_parent_option


def mcp(
    ctx: typer.Context,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile", "-p", help="The profile of every command (a tool may only narrow it)."
        ),
    ] = None,
    workspace: Annotated[
        str | None, typer.Option(help="The workspace the tools work in (default: cwd).")
    ] = None,
    approve: Annotated[
        bool, typer.Option("--approve", help="Run unverified commands without asking (audited).")
    ] = False,
    policy_mode: Annotated[
        str | None,
        typer.Option(help="enforce | audit-only | off (default: config.toml's, else enforce)."),
    ] = None,
    trust: Annotated[
        bool, typer.Option("--trust", help="Opt in to a profile that requires it (trusted).")
    ] = False,
) -> None:
    """Serve MCP on stdio: run, session_start, exec, session_stop, check, profiles, explain,
    read_file, write_file, list_dir — all under the profile chosen here, audited with the
    MCP session's id. Exit 0 when the client closes; 2 for a bad option, 125 when it
    cannot start (an unknown profile, a bad config.toml)."""
    from orchestrator.runner.context import SESSION_ENV, HostContext, new_id

    profile = merge_parent_option(ctx, "profile", profile)
    workspace = merge_parent_option(ctx, "workspace", workspace)
    try:
        from orchestrator.mcp.box import Box
        from orchestrator.mcp.server import serve
    except ImportError as exc:  # pragma: no cover -- an install without the `mcp` package
        raise typer.BadParameter(f"the MCP SDK is not installed ({exc})") from exc
    environ = {**os.environ, SESSION_ENV: os.environ.get(SESSION_ENV) or f"mcp-{new_id()}"}
    context = HostContext.from_environ(environ, cwd=os.getcwd())
    try:
        box = Box(
            context,
            profile=profile,
            workspace=workspace,
            approve=approve,
            policy_mode=policy_mode,
            trust=trust,
        )
    except CodexBoxError as exc:
        fail(exc)
    raise typer.Exit(serve(box))
