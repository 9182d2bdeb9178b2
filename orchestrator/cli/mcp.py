"""``codex-box mcp``: codex-box's sandbox as MCP tools for an AI agent, on stdio
(``orchestrator.mcp``); ``codex-box mcp wrap``: any stdio MCP server, sandboxed
(``orchestrator.mcp.wrap``).

Part of the command line: the options as Typer reads them, the one ``HostContext`` (its
session id is the MCP session's, so every record of this server carries it). Owns
nothing the server does. stdout is the protocol: nothing of ours is printed there.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.core.errors import CodexBoxError

from .output import fail, merge_parent_option, usage

if TYPE_CHECKING:
    from orchestrator.mcp.box import Box
    from orchestrator.mcp.runs import Runs
    from orchestrator.runner.context import HostContext

mcp_app = typer.Typer(
    help="Serve codex-box's sandbox as MCP tools on stdio, or sandbox another MCP server.",
    no_args_is_help=False,
)


def _context() -> HostContext:
    """The one ``HostContext``: its session id is the MCP session's (every record of
    this server carries it)."""
    from orchestrator.runner.context import SESSION_ENV, HostContext, new_id

    environ = {**os.environ, SESSION_ENV: os.environ.get(SESSION_ENV) or f"mcp-{new_id()}"}
    return HostContext.from_environ(environ, cwd=os.getcwd())


# The options `mcp` and `mcp wrap` share (given before `wrap`, they are its own too).
Approve = Annotated[
    bool, typer.Option("--approve", help="Run unverified commands without asking (audited).")
]
PolicyMode = Annotated[
    str | None,
    typer.Option(help="enforce | audit-only | off (default: config.toml's, else enforce)."),
]
Trust = Annotated[
    bool, typer.Option("--trust", help="Opt in to a profile that requires it (trusted).")
]


@mcp_app.callback(invoke_without_command=True)
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
    approve: Approve = False,
    policy_mode: PolicyMode = None,
    trust: Trust = False,
    server: Annotated[
        str | None,
        typer.Option(
            help="Launch run/session_start/exec/session_stop through `codex-box serve` at "
            "unix:PATH or http://127.0.0.1:PORT (default $CODEX_BOX_SERVER; unset: here). "
            "Narrowing is still decided here; the file tools, check, profiles and explain "
            "stay local."
        ),
    ] = None,
) -> None:
    """Serve MCP on stdio: run, session_start, exec, session_stop, check, profiles, explain,
    read_file, write_file, list_dir — all under the profile chosen here, audited with the
    MCP session's id (with --server, the commands launch through `codex-box serve`).
    Exit 0 when the client closes; 2 for a bad option, 125 when it
    cannot start (an unknown profile, a bad config.toml). `codex-box mcp wrap` sandboxes
    another MCP server instead."""
    profile = merge_parent_option(ctx, "profile", profile)
    workspace = merge_parent_option(ctx, "workspace", workspace)
    if ctx.invoked_subcommand is not None:  # wrap: these options are its own too
        if server is not None:
            usage("--server is for `codex-box mcp`: `mcp wrap` runs its server here")
        ctx.params.update(
            profile=profile,
            workspace=workspace,
            approve=approve,
            policy_mode=policy_mode,
            trust=trust,
        )
        return
    try:
        from orchestrator.mcp.server import serve
    except ImportError as exc:  # pragma: no cover -- an install without the `mcp` package
        raise typer.BadParameter(f"the MCP SDK is not installed ({exc})") from exc
    context = _context()
    box = _box(
        context,
        runs=_runs(server, context),
        profile=profile,
        workspace=workspace,
        approve=approve,
        policy_mode=policy_mode,
        trust=trust,
    )
    raise typer.Exit(serve(box))


def _box(context: HostContext, *, runs: Runs | None = None, **options: Any) -> Box:
    """The one ``Box`` of ``mcp`` and ``mcp wrap``; a bad option or profile ends here."""
    from orchestrator.mcp.box import Box

    try:
        return Box(context, runs=runs, **options)
    except CodexBoxError as exc:
        fail(exc)


def _runs(flag: str | None, context: HostContext) -> Runs | None:
    """Where the run and session tools launch: ``--server``, else $CODEX_BOX_SERVER,
    else None (here)."""
    from orchestrator.client import SERVER_ENV

    address = flag or context.environ.get(SERVER_ENV) or None
    if address is None:
        return None
    from orchestrator.mcp.api import Remote

    return Remote(address, context.environ)


@mcp_app.command("wrap", context_settings={"allow_interspersed_args": False})
def wrap(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(metavar="[--] SERVER_CMD [ARGS]...", help="The MCP server's command."),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="The server's profile.")
    ] = None,
    workspace: Annotated[
        str | None, typer.Option(help="The server's workspace (default: cwd).")
    ] = None,
    allow_tool: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-tool", help="Only these tools (repeatable; names or fnmatch patterns)."
        ),
    ] = None,
    deny_tool: Annotated[
        list[str] | None,
        typer.Option("--deny-tool", help="Never these tools (repeatable; wins over allow)."),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env", "-e", help="NAME (yours) or NAME=VALUE into the server (repeatable)."
        ),
    ] = None,
    approve: Approve = False,
    policy_mode: PolicyMode = None,
    trust: Trust = False,
) -> None:
    """Run any stdio MCP server (`-- npx -y @scope/server …`) inside a sandbox of the
    profile, relaying its protocol on stdin/stdout: each tools/call audited, tools refused
    by --allow-tool/--deny-tool (and the profile's mcp.allow_tools/mcp.deny_tools)
    answered with an error without reaching it, and left out of tools/list. Exit: the
    server's code; 126 refused by the policy; 125 setup; 2 usage."""
    if not command:
        usage("no server command given — put it after --, e.g. codex-box mcp wrap -- npx -y S")
    profile = merge_parent_option(ctx, "profile", profile)
    workspace = merge_parent_option(ctx, "workspace", workspace)
    outer = ctx.parent.params if ctx.parent else {}
    policy_mode = policy_mode or outer.get("policy_mode")
    approve, trust = approve or bool(outer.get("approve")), trust or bool(outer.get("trust"))
    from orchestrator.mcp.wrap import Wrapped, tool_filter

    box = _box(
        _context(),
        profile=profile,
        workspace=workspace,
        approve=approve,
        policy_mode=policy_mode,
        trust=trust,
    )
    try:
        tools = tool_filter(box, allow_tool or (), deny_tool or ())
        code = Wrapped(box, command, tools, env=env or ()).run()
    except CodexBoxError as exc:
        fail(exc)
    finally:
        box.close()
    raise typer.Exit(code)
