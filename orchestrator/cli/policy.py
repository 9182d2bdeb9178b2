"""``codex-box check`` and ``codex-box policy test``: the execution policy, asked.

Part of the command line: parses, calls the runner and the policy loader, prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.core.errors import CodexBoxError
from orchestrator.runner.pipeline import Runner, RunRequest

from .output import emit_json, fail, host, merge_parent_option, usage

policy_app = typer.Typer(no_args_is_help=True, help="The execution policy's rule files.")


def check(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(metavar="[--] COMMAND [ARGS]...", help="The command to judge."),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="Judge as under this profile.")
    ] = None,
    workspace: Annotated[
        str | None, typer.Option(help="Workspace directory (default: cwd).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print the execution policy's decision for COMMAND, its matched rules and reasons,
    resolved exactly as `run` would (profile, workspace, rule files); run nothing.
    Exit 0 whatever the decision (125 for a bad profile or policy file)."""
    from orchestrator.policy import gate  # the Starlark engine: only for the verbs that judge

    profile = merge_parent_option(ctx, "profile", profile)
    workspace = merge_parent_option(ctx, "workspace", workspace)
    if not command:
        usage("no command given — e.g. codex-box check -- rm -rf build")
    context = host()
    request = RunRequest(
        argv=tuple(command),
        profile=profile,
        workspace=workspace,
        trust_opt_in=True,  # nothing runs: no opt-in to ask for
    )
    try:
        _, spec = Runner(context, request).compile()
        evaluation = gate.evaluate(spec, home=context.user_home, codex_home=context.home)
    except CodexBoxError as exc:
        fail(exc)
    if as_json:
        emit_json({**evaluation.as_json(), "profile": spec.profile, "workspace": spec.workspace})
        return
    typer.echo(f"{evaluation.decision.label}: {' '.join(command)}")
    for finding in evaluation.findings:
        rule = f"  [{finding.rule}]" if finding.rule else ""
        shown = " ".join(finding.command) or "(whole line)"
        typer.echo(f"  {finding.decision.label:<10} {shown}: {finding.reason}{rule}")
    typer.echo(f"  profile {spec.profile}, workspace {spec.workspace}")


@policy_app.command("test")
def policy_test(
    files: Annotated[list[Path], typer.Argument(help="Policy files (*.policy).")],
    project: Annotated[
        bool,
        typer.Option("--project", help="Check as a project's .codex/rules file (tighten only)."),
    ] = False,
) -> None:
    """Load each file and check every rule's examples (match/not_match,
    should_match/should_not_match). Exit 0 when all pass, 125 with file:line otherwise."""
    from orchestrator.policy import load_file  # the Starlark engine: only when asked

    for path in files:
        try:
            rules = load_file(path, tighten_only=project)
        except CodexBoxError as exc:
            fail(exc)
        count = len(rules.prefix) + len(rules.programs) + len(rules.pipes)
        typer.echo(f"{path}: {count} rules, every example passes")
