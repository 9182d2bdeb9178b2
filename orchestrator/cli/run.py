"""``codex-box run`` and ``codex-box --show-profile``: the launch verb and its question.

Part of the command line: the options as Typer reads them, handed as one ``RunArgs`` to
``cli.launch`` (which the fast path, ``cli.fast``, calls with the same). Owns nothing the
runner decides.
"""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.core.errors import CodexBoxError
from orchestrator.runner import preview
from orchestrator.runner.views import resolution_dict, resolution_text

from . import launch
from .fast import RunArgs
from .output import emit_json, fail, host, merge_parent_option, warn


def show_profile(*, profile: str | None, workspace: str | None, as_json: bool) -> None:
    """The profile that applies here, where it came from, and the backend a run would use."""
    context = host()
    try:
        resolution = context.resolve(profile, context.resolved_workspace(workspace))
    except CodexBoxError as exc:
        fail(exc)
    warn(resolution)
    backend = preview.backend_for(context, profile=profile, workspace=workspace, backend=None)
    if as_json:
        emit_json({**resolution_dict(resolution), "backend": backend})
    else:
        typer.echo(f"{resolution_text(resolution)}\n  backend: {backend}")


def run(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(metavar="[--] COMMAND [ARGS]...", help="The command to run in the sandbox."),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            help="offline, net-read-only, workspace, workspace-net, trusted, or yours.",
        ),
    ] = None,
    workspace: Annotated[
        str | None, typer.Option(help="Workspace directory (default: cwd).")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(help="auto (Docker when reachable, else native) | docker | native."),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            "-e",
            help="Pass a withheld host variable (NAME) or set one (NAME=VALUE). Repeatable.",
        ),
    ] = None,
    timeout: Annotated[
        str | None, typer.Option(help="Kill after this long (30, 5m); exit 124.")
    ] = None,
    memory: Annotated[
        str | None,
        typer.Option(help="Memory limit (512m, 2g). Default: none."),
    ] = None,
    pids: Annotated[
        str | None, typer.Option(help="Process limit (0 = none). Default 4096.")
    ] = None,
    cpus: Annotated[str | None, typer.Option(help="CPU quota, e.g. 1.5 (0 = none).")] = None,
    image: Annotated[
        str | None,
        typer.Option(
            help="Container image (container backends). Default "
            "codex-box/base, built by `make images`."
        ),
    ] = None,
    tty: Annotated[bool, typer.Option("--tty", "-t", help="Run on the terminal.")] = False,
    trust: Annotated[
        bool,
        typer.Option(
            "--yes-i-trust-this-workspace", help="Opt in to a profile that needs it (trusted)."
        ),
    ] = False,
    approve: Annotated[
        bool,
        typer.Option(
            "--approve",
            help="Run a command the policy cannot verify without asking (recorded in the audit).",
        ),
    ] = False,
    policy_mode: Annotated[
        str | None,
        typer.Option(
            "--policy-mode",
            help="enforce (default) | audit-only (record the decision, refuse nothing) | off.",
        ),
    ] = None,
    print_spec: Annotated[
        bool,
        typer.Option(
            "--print-spec",
            help="Print the exact launch request the backend would make; run nothing.",
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="After the command ends, print its result as one JSON line on stderr."
        ),
    ] = False,
    devcontainer: Annotated[
        str | None,
        typer.Option(
            "--devcontainer",
            metavar="[PATH]",
            help="Use the workspace's devcontainer.json (or PATH): its image or build, user, "
            "env and lifecycle commands, vetted by the profile.",
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            help="Run it through `codex-box serve` at unix:PATH or http://127.0.0.1:PORT "
            "(default $CODEX_BOX_SERVER; unset: here)."
        ),
    ] = None,
) -> None:
    """Run COMMAND in the sandbox of the resolved profile (see `--show-profile`)."""
    args = RunArgs(
        command=tuple(command or ()),
        profile=merge_parent_option(ctx, "profile", profile),
        workspace=merge_parent_option(ctx, "workspace", workspace),
        backend=backend,
        env=tuple(env or ()),
        timeout=timeout,
        memory=memory,
        pids=pids,
        cpus=cpus,
        image=image,
        tty=tty,
        trust=trust,
        approve=approve,
        policy_mode=policy_mode,
        print_spec=print_spec,
        as_json=as_json,
        server=server,
        devcontainer=devcontainer,
    )
    raise typer.Exit(launch.execute(args))
