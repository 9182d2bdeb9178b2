"""The ``codex-box`` command line (Typer): the app, its verbs wired in one place, and
the process's way out.

Owns: which verb lives where (one module per verb group, imported here and nowhere
else), the global options (``--show-profile``, ``--debug``, ``--version``), loguru's
configuration, and turning any exit into a documented code (DESIGN.md §4).
Does not own: any verb's options or output (its module), any decision (``runner``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated

import typer

from orchestrator import __version__
from orchestrator.core import log
from orchestrator.core.errors import EXIT_SETUP

from . import approvals, elevate, policy, profiles, run, system
from .audit import audit_app

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Run commands inside a sandbox chosen by a named security profile.",
)
# Options stop at the first argument (the command), so `run ls -la` passes -la to ls,
# while a mistyped option before it (`--profle`) is a usage error, not the command.
COMMAND_VERB = {"allow_interspersed_args": False}
app.command("run", context_settings=COMMAND_VERB)(run.run)
app.command("check", context_settings=COMMAND_VERB)(policy.check)
app.command("doctor")(system.doctor)
app.command("gc")(system.gc)
app.command("elevate")(elevate.elevate)
app.add_typer(profiles.profiles_app, name="profiles")
profiles.profiles_app.command("allow")(approvals.allow)
profiles.profiles_app.command("deny")(approvals.deny)
profiles.profiles_app.command("allowed")(approvals.allowed)
app.add_typer(system.apparmor_app, name="apparmor")
app.add_typer(policy.policy_app, name="policy")
app.add_typer(audit_app, name="audit")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"codex-box {__version__}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    show_profile: Annotated[
        bool,
        typer.Option(
            "--show-profile", help="Print the profile that applies here and where it came from."
        ),
    ] = False,
    profile: Annotated[str | None, typer.Option("--profile", "-p", help="Profile name.")] = None,
    workspace: Annotated[
        str | None, typer.Option(help="Workspace directory (default: cwd).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Log exact launch details to stderr.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    if debug or os.environ.get("CODEX_BOX_DEBUG"):
        from loguru import logger  # loguru only when asked: start-up time

        logger.remove()
        logger.add(sys.stderr, level="DEBUG")
        log.enable()
    if ctx.invoked_subcommand is not None:
        return
    if not show_profile:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    run.show_profile(profile=profile, workspace=workspace, as_json=as_json)


def main() -> None:
    try:
        app(prog_name="codex-box")
    except SystemExit as exc:
        _exit_now(exc.code)
    except Exception as exc:  # a bug, not bad input: still one line and a documented code
        if os.environ.get("CODEX_BOX_DEBUG"):
            raise
        typer.echo(
            f"codex-box: internal error: {type(exc).__name__}: {exc} — nothing more "
            "was run; rerun with CODEX_BOX_DEBUG=1 for the traceback and report it",
            err=True,
        )
        _exit_now(EXIT_SETUP)


def _exit_now(code: object) -> None:
    """Exit without the interpreter's teardown (20-35 ms per run with an engine SDK
    loaded). Safe because everything durable is already on disk: audit records are
    fsync'd when written, the sandbox is gone, and codex-box registers no atexit work.
    Only our own buffered output remains, flushed here."""
    status = code if isinstance(code, int) else (0 if code is None else EXIT_SETUP)
    if not isinstance(code, int) and code is not None:
        print(code, file=sys.stderr)  # SystemExit("message") semantics
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to tell
            stream.flush()
    os._exit(status)
