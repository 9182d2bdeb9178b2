"""The Typer command tree: the global options and every verb, each verb's module
imported (and its parameters built) only when that verb is the one invoked.

Owns: which verb lives where (one module per verb group, imported here and nowhere
else), the global options (``--show-profile``, ``--debug``, ``--version``) and loguru's
configuration. A command line that names no verb, asks the top level for help, or names
one this tree does not know gets the whole tree, so Typer's help and its "No such
command" suggestions are what they always were.
Does not own: any verb's options or output (its module), the fast path (``cli.fast``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Annotated

import typer

from orchestrator import __version__
from orchestrator.core import log

# Options stop at the first argument (the command), so `run ls -la` passes -la to ls,
# while a mistyped option before it (`--profle`) is a usage error, not the command.
COMMAND_VERB = {"allow_interspersed_args": False}
# The global options that take a value (skipped to find the verb).
GLOBAL_VALUES = frozenset({"--profile", "-p", "--workspace"})


def _run(app: typer.Typer) -> None:
    from . import run

    app.command("run", context_settings=COMMAND_VERB)(run.run)


def _check(app: typer.Typer) -> None:
    from . import policy

    app.command("check", context_settings=COMMAND_VERB)(policy.check)


def _doctor(app: typer.Typer) -> None:
    from . import system

    app.command("doctor")(system.doctor)


def _gc(app: typer.Typer) -> None:
    from . import system

    app.command("gc")(system.gc)


def _elevate(app: typer.Typer) -> None:
    from . import elevate

    app.command("elevate")(elevate.elevate)


def _profiles(app: typer.Typer) -> None:
    from . import approvals, profiles

    app.add_typer(profiles.profiles_app, name="profiles")
    profiles.profiles_app.command("allow")(approvals.allow)
    profiles.profiles_app.command("deny")(approvals.deny)
    profiles.profiles_app.command("allowed")(approvals.allowed)


def _apparmor(app: typer.Typer) -> None:
    from . import system

    app.add_typer(system.apparmor_app, name="apparmor")


def _policy(app: typer.Typer) -> None:
    from . import policy

    app.add_typer(policy.policy_app, name="policy")


def _audit(app: typer.Typer) -> None:
    from .audit import audit_app

    app.add_typer(audit_app, name="audit")


def _session(app: typer.Typer) -> None:
    from . import session

    app.add_typer(session.session_app, name="session")


def _exec(app: typer.Typer) -> None:
    from . import session

    app.command("exec", context_settings=COMMAND_VERB)(session.exec_verb)


def _serve(app: typer.Typer) -> None:
    from . import serve

    app.command("serve")(serve.serve)


def _mcp(app: typer.Typer) -> None:
    from . import mcp

    app.add_typer(mcp.mcp_app, name="mcp")


def _ci(app: typer.Typer) -> None:
    from . import ci

    app.add_typer(ci.ci_app, name="ci")


def _devcontainer(app: typer.Typer) -> None:
    from . import devcontainer

    app.add_typer(devcontainer.devcontainer_app, name="devcontainer")


def _selftest(app: typer.Typer) -> None:
    from . import selftest

    app.command("selftest")(selftest.selftest)


# In the order `codex-box --help` lists them.
VERBS: dict[str, Callable[[typer.Typer], None]] = {
    "run": _run,
    "session": _session,
    "exec": _exec,
    "serve": _serve,
    "mcp": _mcp,
    "ci": _ci,
    "devcontainer": _devcontainer,
    "selftest": _selftest,
    "check": _check,
    "doctor": _doctor,
    "gc": _gc,
    "elevate": _elevate,
    "profiles": _profiles,
    "apparmor": _apparmor,
    "policy": _policy,
    "audit": _audit,
}


def invoked_verb(argv: Sequence[str]) -> str | None:
    """The verb ``argv`` invokes, past the global options; None when it names none this
    tree knows, or asks the top level for help (then every verb is built)."""
    tokens = iter(argv)
    for token in tokens:
        if token in ("--help", "-h"):
            return None
        if token in GLOBAL_VALUES:
            next(tokens, None)  # its value
        elif not token.startswith("-"):
            return token if token in VERBS else None
        # else a flag (--debug, --json, --profile=X, ...) or a mistake Typer will name
    return None


def build(argv: Sequence[str]) -> typer.Typer:
    """The app for this command line: every verb, or only the one it invokes."""
    app = typer.Typer(
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        help="Run commands inside a sandbox chosen by a named security profile.",
    )
    app.callback(invoke_without_command=True)(main_callback)
    verb = invoked_verb(argv)
    for name, register in VERBS.items():
        if verb is None or name == verb:
            register(app)
    return app


def _version(value: bool) -> None:
    if value:
        typer.echo(f"codex-box {__version__}")
        raise typer.Exit(0)


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
    if ctx.invoked_subcommand == "exec" and (profile is not None or workspace is not None):
        from . import exec_cmd

        exec_cmd.fixed_flag("--profile" if profile is not None else "--workspace")
    if ctx.invoked_subcommand is not None:
        return
    if not show_profile:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    from . import run

    run.show_profile(profile=profile, workspace=workspace, as_json=as_json)
