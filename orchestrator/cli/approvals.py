"""``codex-box profiles allow | deny | allowed``: approving a ``.codex-profile`` that
widens the profile, revoking that, and listing approvals.

Part of the command line: options and output only. Does not own: approving or revoking
(``runner.elevate``), approval files and their checks (``resolve.approval``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.core.errors import CodexBoxError
from orchestrator.resolve.elevation import iso

from .output import emit_json, fail, host

if TYPE_CHECKING:
    pass

AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Workspace = Annotated[str | None, typer.Option(help="Workspace directory (default: cwd).")]
# --- approving a .codex-profile -------------------------------------------------------

FileArg = Annotated[
    str | None,
    typer.Argument(
        help="A .codex-profile, or the directory holding one (default: the one that "
        "applies to the workspace).",
        show_default=False,
    ),
]


def allow(
    path: FileArg = None,
    workspace: Workspace = None,
) -> None:
    """Approve this exact content of a .codex-profile that widens the profile (an edit
    needs approval again). It can never make a file select an opt-in profile."""
    from orchestrator.profiles.widening import wider  # approvals only: start-up time
    from orchestrator.runner.elevate import approve_file, audit_writer, profile_file_target

    context = host()
    try:
        target = profile_file_target(context, path, workspace, must_exist=True)
        made = approve_file(context, target, record=audit_writer(context))
    except CodexBoxError as exc:
        fail(exc)
    typer.echo(
        f"approved {target} (sha256 {made.approval.sha256[:12]}): selects {made.profile.name}"
    )
    widens = wider(made.base, made.profile)
    if widens:
        typer.echo(f"  wider than '{made.base.name}' there: {'; '.join(widens)}")
    else:
        typer.echo(f"  not wider than '{made.base.name}' there: it applied without approval")
    typer.echo(f"  an edit needs approval again; revoke with: codex-box profiles deny {target}")


def deny(
    path: FileArg = None,
    workspace: Workspace = None,
) -> None:
    """Revoke the approval of a .codex-profile: a wider one is ignored again."""
    from orchestrator.runner.elevate import audit_writer, profile_file_target, revoke_file

    context = host()
    try:
        target = profile_file_target(context, path, workspace, must_exist=False)
        had = revoke_file(context, target, record=audit_writer(context))
    except CodexBoxError as exc:
        fail(exc)
    except OSError as exc:
        fail(CodexBoxError(f"cannot revoke: {exc}", hint="check CODEX_HOME's permissions"))
    typer.echo(f"revoked the approval of {target}" if had else f"{target} was not approved")


def allowed(as_json: AsJson = False) -> None:
    """Every approved .codex-profile: path, content hash, when, and whether the file
    still holds what was approved."""
    from orchestrator.resolve import (
        approval as profile_approval,  # approvals only: not on every command's start-up
    )
    from orchestrator.runner.elevate import approval_state

    home = host().home
    rows: list[dict[str, Any]] = []
    try:
        found = profile_approval.listing(home)
    except CodexBoxError as exc:
        fail(exc)
    for item in found:
        if isinstance(item, profile_approval.Approval):
            rows.append(
                {
                    "path": item.path,
                    "sha256": item.sha256,
                    "profile": item.profile,
                    "approved": iso(item.approved),
                    "approved_by": item.approved_by,
                    "state": approval_state(home, item),
                }
            )
        else:
            rows.append({"path": str(item[0]), "state": f"invalid: {item[1]}"})
    if as_json:
        emit_json(rows)
        return
    if not rows:
        typer.echo("no approved .codex-profile (codex-box profiles allow PATH approves one)")
    for row in rows:
        if "sha256" not in row:
            typer.echo(f"{row['path']}  {row['state']}")
            continue
        typer.echo(
            f"{row['path']}  sha256 {row['sha256'][:12]}  {row['profile']}  "
            f"{row['approved']} by {row['approved_by']}  {row['state']}"
        )
