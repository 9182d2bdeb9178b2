"""``codex-box profiles allow | deny | allowed``: approving a ``.codex-profile`` that
widens the profile, revoking that, and listing approvals.

Part of the command line: options and output only. Does not own: approving or revoking
(``runner.elevate``), approval files and their checks (``resolve.approval``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.core.errors import CodexBoxError, UsageError
from orchestrator.resolve.elevation import iso
from orchestrator.resolve.profile_file import PROFILE_FILE, find_profile_file

from .output import emit_json, fail, host

if TYPE_CHECKING:
    from orchestrator.resolve import approval as profile_approval

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


def _target(path: str | None, workspace: str | None, *, must_exist: bool) -> Path:
    """The realpath of the .codex-profile meant: PATH (a file or its directory), else
    the nearest at or above the workspace."""
    if path is None:
        where = Path(os.path.realpath(workspace or os.getcwd()))
        found = find_profile_file(where)
        if found is None:
            raise UsageError(f"no {PROFILE_FILE} at or above {where}", hint="name the file: PATH")
        return found.path
    given = Path(os.path.abspath(path))
    if given.is_dir() and not given.is_symlink():
        given = given / PROFILE_FILE
    if given.name != PROFILE_FILE:
        raise UsageError(f"{path} is not a {PROFILE_FILE}", hint=f"name a {PROFILE_FILE} file")
    # The directory's realpath, the name itself: a symlinked .codex-profile is refused
    # when read (it is never followed), so approving through a link approves nothing.
    target = Path(os.path.realpath(given.parent)) / PROFILE_FILE
    if must_exist and not os.path.lexists(target):
        raise UsageError(f"{target} does not exist", hint="name an existing .codex-profile")
    return target


def allow(
    path: FileArg = None,
    workspace: Workspace = None,
) -> None:
    """Approve this exact content of a .codex-profile that widens the profile (an edit
    needs approval again). It can never make a file select an opt-in profile."""
    from orchestrator.profiles.widening import wider  # approvals only: start-up time
    from orchestrator.runner.elevate import approve_file, audit_writer

    context = host()
    try:
        target = _target(path, workspace, must_exist=True)
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
    from orchestrator.runner.elevate import audit_writer, revoke_file  # approvals only

    context = host()
    try:
        target = _target(path, workspace, must_exist=False)
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
                    "state": _still(home, item),
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


def _still(home: Path, approval: profile_approval.Approval) -> str:
    """``matches``, ``edited`` or ``missing``: does the file still hold what was approved?"""
    from orchestrator.resolve import (
        approval as profile_approval,  # approvals only: not on every command's start-up
    )
    from orchestrator.resolve.profile_file import read_profile_file

    try:
        found = read_profile_file(Path(approval.path))
    except CodexBoxError as exc:
        return f"unreadable: {exc.message}"
    if found is None:
        return "missing"
    checked = profile_approval.check(home, found.path, found.text.encode())
    return "matches" if isinstance(checked, profile_approval.Approval) else "edited"
