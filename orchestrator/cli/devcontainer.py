"""``codex-box devcontainer check``: what a profile would refuse or change in a
project's ``devcontainer.json``; ``codex-box devcontainer export``: a devcontainer.json
whose ``devcontainer up`` starts the profile's sandbox (``orchestrator.devcontainer``).

Part of the command line: the options, the report, the exit code — check: 0 when the
profile refuses nothing, 126 when it refuses a key (what ``run`` would then exit with),
125 for a file that cannot be read; export: 0 when written, 2 for an existing file
without --merge, 126 for a profile a plain ``devcontainer up`` cannot enforce. Owns
nothing the vetting or the export decides.
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
    from orchestrator.devcontainer.config import find_config, read_config_text
    from orchestrator.devcontainer.plan import raw_findings
    from orchestrator.devcontainer.vetting import refused

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
        raw, text = read_config_text(file)
        root = context.resolved_workspace(str(workspace))
        resolution = context.resolve(profile, root)
        findings = raw_findings(
            file,
            raw,
            text,
            resolution.profile,
            home=context.user_home,
            codex_home=str(context.home),
            workspace=root,
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


@devcontainer_app.command("export")
def export(
    profile: Annotated[str, typer.Option("--profile", "-p", help="The profile to export.")],
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="The devcontainer.json to write (default: the workspace's, else "
            ".devcontainer/devcontainer.json).",
        ),
    ] = None,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge", help="Merge into an existing file: its other keys and comments stay."
        ),
    ] = False,
    workspace: Annotated[
        str | None, typer.Option("--workspace", "-w", help="The project (default: cwd).")
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            "--image", help="The image of a file that names none (default: codex-box/base)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Write a devcontainer.json whose `devcontainer up` starts the profile's sandbox:
    no network (or open network), read-only root, no capabilities, no-new-privileges,
    the profile's seccomp JSON (copied beside the file), the workspace read-only for
    read-only profiles, the missing protected names created (empty, permanent) and bound
    read-only. The image (a build's base images) must be in Docker: its
    devcontainer.metadata label is vetted. Exit 2 when the file exists without --merge,
    126 when the profile cannot be exported (trusted; an egress allowlist or method
    filter) or the file, its image or its build asks for what the profile refuses."""
    from orchestrator.core.paths import inside
    from orchestrator.devcontainer.config import find_config
    from orchestrator.devcontainer.export_files import export as write_export

    context = host()
    try:
        root = Path(context.resolved_workspace(workspace))
        if output is not None:
            given = Path(os.path.normpath(context.workspace_path(output)))
            # Inside the workspace by name: kept as named, so that a folder on the way
            # that resolves outside it is refused (export_files.check_output).
            resolved = Path(os.path.realpath(given.parent)) / given.name
            target = given if inside(str(given), str(root)) else resolved
        else:
            target = find_config(root) or root / ".devcontainer" / "devcontainer.json"
        resolution = context.resolve(profile, root)
        done = write_export(
            resolution.profile,
            workspace=root,
            output=target,
            merge=merge,
            home=context.user_home,
            codex_home=str(context.home),
            environ=os.environ,
            image=image,
        )
    except CodexBoxError as exc:
        fail(exc)
    if as_json:
        emit_json(
            {
                "file": str(done.file),
                "seccomp": None if done.seccomp is None else str(done.seccomp),
                "profile": resolution.profile.name,
                "notes": list(done.notes),
            }
        )
        return
    typer.echo(f"wrote {done.file} for profile {resolution.profile.name}")
    if done.seccomp is not None:
        typer.echo(f"wrote {done.seccomp} (its seccomp profile, named by runArgs)")
    for note in done.notes:
        typer.echo(f"  {note}")
