"""The MCP layer of ``codex-box mcp``: the tools, their JSON-schema'd arguments (from the
type hints, by the official ``mcp`` SDK's ``MCPServer``), errors as tool errors, and
approval through the client's elicitation.

Owns: turning each tool call into one ``Box`` / ``Files`` call in a worker thread (they
block), a ``CodexBoxError`` into a tool error whose text is its one line (what, why,
the fix), and asking the person (``ctx.elicit``) when a command is unverified and the
client can ask. Nothing here decides anything.
"""

# No ``from __future__ import annotations``: the SDK reads each tool's annotations,
# which name resolvers local to ``build``.

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve
from pydantic import BaseModel, Field

from orchestrator.audit import records
from orchestrator.core.errors import CodexBoxError

from . import questions
from .api import Remote
from .box import Box, argv_of
from .capture import Stop
from .files import Files
from .sessions import Sessions

T = TypeVar("T")
APPROVAL_HINT = (
    "to run it: approve it when your MCP client asks (it needs elicitation support), or "
    "the person restarts `codex-box mcp --approve` / `--policy-mode audit-only`, or adds "
    "a rule for it (`codex-box policy test`)"
)

Argv = Annotated[
    list[str] | None, Field(description='The command as a list, e.g. ["make", "test"].')
]
Command = Annotated[str | None, Field(description="The command as one shell line (run by sh -c).")]
Cwd = Annotated[str | None, Field(description="A directory inside the workspace (relative to it).")]
Timeout = Annotated[
    str | int | None, Field(description='Seconds, or e.g. "5m": the command is killed then.')
]
Env = Annotated[list[str] | None, Field(description="Variables to set, each NAME=VALUE.")]
Narrow = Annotated[
    str | None,
    Field(description="A profile no wider than the server's (narrowing only; see profiles)."),
]


class Approval(BaseModel):
    approve: bool = Field(description="Run this unverified command once.")


async def _call(fn: Callable[[], T], stop: Stop | None = None) -> T:
    """``fn`` in a worker thread. With ``stop``: a cancelled call (the client sent
    ``notifications/cancelled``, or went away) stops the command at once, and the thread
    finishes on its own, recording the end as cancelled."""
    try:
        return await anyio.to_thread.run_sync(fn, abandon_on_cancel=stop is not None)
    except anyio.get_cancelled_exc_class():
        if stop is not None:
            stop()
        raise
    except CodexBoxError as exc:
        text = exc.one_line()
        if "not approved" in text:
            text += f" — {APPROVAL_HINT}"
        raise ToolError(text) from exc


def _asked(box: Box, tool: str, arguments: dict[str, Any]) -> None:
    """A question that launches nothing still leaves its record (every tool call does:
    the others through what they run, read or write)."""
    box.write(
        records.mcp_tool_called(
            tool=tool,
            arguments={k: v for k, v in arguments.items() if v is not None},
            profile=box.profile,
            workspace=box.workspace,
            allowed=True,
            reason="a question: nothing runs",
        )
    )


def _asking(ctx: Context) -> bool:
    """The client can put a question to its person (form elicitation)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _answer(outcome: ElicitationResult[Approval]) -> bool | None:
    """The person's answer (declined or cancelled: no); None when nothing was asked."""
    if isinstance(outcome, AcceptedElicitation):
        if outcome.data is None:
            return None
        return isinstance(outcome.data, Approval) and outcome.data.approve
    return False


def build(box: Box, sessions: Sessions) -> MCPServer:
    files = Files(box)
    where = (
        f" Commands launch through the codex-box serve at {box.runs.address}; the file "
        "tools, check, profiles and explain answer on this machine."
        if isinstance(box.runs, Remote)
        else ""
    )
    server: MCPServer = MCPServer(
        "codex-box",
        log_level="WARNING",  # a refused call is the agent's answer, not the server's log
        instructions=(
            f"Commands run sandboxed under profile {box.profile} in {box.workspace}, each "
            "judged by codex-box's execution policy and audited. `profiles` and `explain` "
            "say what is allowed here." + where
        ),
    )

    def ask_run(
        ctx: Context,
        argv: list[str] | None,
        command: str | None,
        cwd: str | None,
        profile: str | None,
    ) -> Elicit[Approval] | None:
        """Before ``run``: an unverified command put to the person (the SDK asks through
        elicitation, mid-call or as an input-required round, as the protocol has it)."""
        if not _asking(ctx) or bool(argv) == bool(command):
            return None
        question = box.question(argv_of(argv, command), profile=profile, cwd=cwd)
        return Elicit(f"codex-box: {question}", Approval) if question else None

    def ask_exec(
        ctx: Context, session: str, argv: list[str] | None, command: str | None, cwd: str | None
    ) -> Elicit[Approval] | None:
        if not _asking(ctx) or bool(argv) == bool(command):
            return None
        try:
            question = sessions.question(session, argv_of(argv, command), cwd=cwd)
        except CodexBoxError:
            return None  # the exec itself says why
        return Elicit(f"codex-box: {question}", Approval) if question else None

    @server.tool()
    async def run(
        approval: Annotated[ElicitationResult[Approval], Resolve(ask_run)],
        argv: Argv = None,
        command: Command = None,
        cwd: Cwd = None,
        timeout: Timeout = None,
        env: Env = None,
        profile: Narrow = None,
    ) -> dict[str, Any]:
        """Run one command in a fresh sandbox of this server's profile. Result: exit_code,
        stdout/stderr (each capped: text, bytes, truncated), duration_ms, decision. A
        command the execution policy refuses is an error saying why and how to approve.
        Through `codex-box serve` when this server was started with --server."""
        stop = Stop()
        return await _call(
            lambda: box.run(
                argv_of(argv, command),
                cwd=cwd,
                timeout=None if timeout is None else str(timeout),
                env=env or (),
                profile=profile,
                answer=_answer(approval),
                stop=stop,
            ),
            stop,
        )

    @server.tool()
    async def session_start(profile: Narrow = None) -> dict[str, Any]:
        """Start a session: one sandbox that keeps its state across `exec` calls (through
        `codex-box serve` when this server was started with --server)."""
        return await _call(functools.partial(sessions.start, profile))

    @server.tool(name="exec")
    async def exec_(
        approval: Annotated[ElicitationResult[Approval], Resolve(ask_exec)],
        session: Annotated[str, Field(description="The id session_start returned.")],
        argv: Argv = None,
        command: Command = None,
        cwd: Cwd = None,
        timeout: Timeout = None,
        env: Env = None,
    ) -> dict[str, Any]:
        """Run one command inside a session started by session_start (same result as run)."""
        stop = Stop()
        return await _call(
            lambda: sessions.exec(
                session,
                argv_of(argv, command),
                cwd=cwd,
                timeout=None if timeout is None else str(timeout),
                env=env or (),
                answer=_answer(approval),
                stop=stop,
            ),
            stop,
        )

    @server.tool()
    async def session_stop(
        session: Annotated[str, Field(description="The id session_start returned.")],
    ) -> dict[str, Any]:
        """Stop a session: its processes and sandbox are removed."""
        return await _call(functools.partial(sessions.stop, session))

    @server.tool()
    async def check(
        argv: Argv = None, command: Command = None, profile: Narrow = None
    ) -> dict[str, Any]:
        """The execution policy's decision on a command (safe, match, unverified,
        forbidden) with its findings; nothing runs (judged on this machine, even with
        --server)."""
        _asked(box, "check", {"argv": argv, "command": command, "profile": profile})
        return await _call(lambda: questions.check(box, argv_of(argv, command), profile))

    @server.tool()
    async def profiles() -> dict[str, Any]:
        """Every profile, and which this server lets a tool narrow to (this machine's)."""
        _asked(box, "profiles", {})
        return await _call(functools.partial(questions.profiles, box))

    @server.tool()
    async def explain() -> dict[str, Any]:
        """This server's profile: where it came from and what it allows (this machine's,
        which decides narrowing even with --server)."""
        _asked(box, "explain", {})
        return await _call(functools.partial(questions.explain, box))

    @server.tool()
    async def read_file(
        path: Annotated[str, Field(description="A file inside the workspace (relative to it).")],
    ) -> dict[str, Any]:
        """Read a file of the workspace (capped at 1 MiB; never through a symlink). On this
        machine, even with --server."""
        return await _call(functools.partial(files.read_file, path))

    @server.tool()
    async def write_file(
        path: Annotated[str, Field(description="A file inside the workspace (relative to it).")],
        content: Annotated[str, Field(description="The whole new content (UTF-8).")],
    ) -> dict[str, Any]:
        """Write a file of the workspace, when the profile lets the workspace be written
        (never a protected path such as .git or .codex-profile). On this machine, even with
        --server."""
        return await _call(functools.partial(files.write_file, path, content))

    @server.tool()
    async def list_dir(
        path: Annotated[str, Field(description="A directory inside the workspace.")] = ".",
    ) -> dict[str, Any]:
        """List a directory of the workspace (names, types, sizes). On this machine, even
        with --server."""
        return await _call(functools.partial(files.list_dir, path))

    return server


def serve(box: Box) -> int:
    """Serve on stdio until the client closes it; everything started here is stopped."""
    sessions = Sessions(box)
    server = build(box, sessions)
    try:
        anyio.run(server.run_stdio_async)
    finally:
        sessions.close()
        box.close()
    return 0
