"""``codex-box run`` and ``codex-box --show-profile``: the launch verb and its question.

Part of the command line: parses the options, builds one ``RunRequest`` and calls the
runner, prints what the runner returns. Owns nothing the runner decides.
"""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.core.errors import CodexBoxError
from orchestrator.core.options import LaunchOptions
from orchestrator.runner import preview
from orchestrator.runner.pipeline import Runner, RunRequest
from orchestrator.runner.views import resolution_dict, resolution_text, result_dict

from .output import confirm_on_tty, emit_json, fail, host, merge_parent_option, usage, warn


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
) -> None:
    """Run COMMAND in the sandbox of the resolved profile (see `--show-profile`)."""
    profile = merge_parent_option(ctx, "profile", profile)
    workspace = merge_parent_option(ctx, "workspace", workspace)
    if not command:
        usage("no command given — put it after --, e.g. codex-box run -- make test")
    request = RunRequest(
        argv=tuple(command),
        profile=profile,
        workspace=workspace,
        backend=backend,
        options=LaunchOptions(
            env_names=tuple(env or ()),
            timeout=timeout,
            memory=memory,
            pids=pids,
            cpus=cpus,
            image=image,
            tty=tty,
        ),
        trust_opt_in=trust,
        approve=approve,
        policy_mode=policy_mode,
    )
    runner = Runner(host(), request, confirm=confirm_on_tty)
    try:
        if print_spec:
            prepared = runner.prepare(probe=False, policy=False)
            emit_json(
                {
                    "backend": prepared.backend.name,
                    "why": prepared.selection.why,
                    "skipped": list(prepared.selection.skipped),
                    "request": prepared.backend.translate(prepared.spec, prepared.selection.facts),
                }
            )
            return
        try:
            prepared = runner.prepare()
        finally:  # an ignored elevation grant explains a refusal, so also before one
            warn(runner.resolution)
        outcome = runner.run(prepared)
    except CodexBoxError as exc:
        fail(exc)
    result = outcome.result
    for warning in outcome.warnings:  # the post-run check: planted git repositories
        typer.echo(f"codex-box: warning: {warning}", err=True)
    if result.detail and (result.exit_code in (124, 126, 127) or result.oom_killed):
        typer.echo(f"codex-box: {result.detail}", err=True)
    if as_json:
        emit_json(
            result_dict(
                result,
                run_id=runner.run_id,
                session_id=runner.session_id,
                profile=outcome.prepared.spec.profile,
            ),
            err=True,
        )
    raise typer.Exit(result.exit_code)
