"""``codex-box devcontainer check``: what a profile would refuse or change in a
project's ``devcontainer.json`` (``orchestrator.devcontainer``).

Part of the command line: the options, the report, the exit code — 0 when the profile
refuses nothing, 126 when it refuses a key (what ``run`` would then exit with), 125 for
a file that cannot be read. Owns nothing the vetting decides.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.core.errors import EXIT_REFUSED, CodexBoxError

from .output import emit_json, fail, host

devcontainer_app = typer.Typer(
    help="Dev Containers: what a profile makes of a devcontainer.json.", no_args_is_help=True
)


@devcontainer_app.command("check")
def check(
    path: Annotated[
        str | None,
        typer.Argument(help="A devcontainer.json, or a workspace holding one (default: cwd)."),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="Profile (default: what applies).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print each key the profile refuses or changes. Exit 0 when it refuses none, 126
    when it refuses one, 125 when the file cannot be read."""
    from orchestrator.devcontainer.config import find_config, read_config
    from orchestrator.devcontainer.vetting import refused, vet

    context = host()
    given = Path(os.path.abspath(path or "."))
    try:
        if given.is_dir():
            found = find_config(given)
            if found is None:
                raise CodexBoxError(
                    f"no .devcontainer/devcontainer.json or .devcontainer.json in {given}",
                    hint="pass the file's path",
                )
            workspace, file = given, found
        else:
            file = given
            in_folder = given.parent.name == ".devcontainer"
            workspace = given.parent.parent if in_folder else given.parent
        config = read_config(file)
        resolution = context.resolve(profile, context.resolved_workspace(str(workspace)))
        findings = vet(
            config,
            resolution.profile,
            home=context.user_home,
            codex_home=str(context.home),
        )
    except CodexBoxError as exc:
        fail(exc)
    if as_json:
        emit_json(
            {
                "file": str(file),
                "profile": resolution.profile.name,
                "findings": [
                    {"key": f.key, "value": f.value, "action": f.action, "why": f.why}
                    for f in findings
                ],
            }
        )
    else:
        typer.echo(f"{file} under profile {resolution.profile.name}:")
        for finding in findings:
            typer.echo(f"  {finding.line()}")
        if not findings:
            typer.echo("  nothing refused or changed")
    if refused(findings):
        raise typer.Exit(EXIT_REFUSED)
