"""``codex-box elevate``: grant a profile to a workspace for a while, revoke it, show it.

Part of the command line: options, the prompt and output. Does not own: granting and
revoking with their audit records (``runner.elevate``), grant files and their checks
(``resolve.elevation``), precedence (``resolve``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.core.errors import CodexBoxError, UsageError
from orchestrator.resolve import elevation
from orchestrator.runner.context import HostContext

from .output import confirm_on_tty, emit_json, fail, host


def elevate(
    to: Annotated[str | None, typer.Option("--to", help="The profile to grant.")] = None,
    duration: Annotated[
        str | None, typer.Option("--for", help="How long: 90s, 30m, 2h, 1d (at most 24h).")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit log).")] = None,
    workspace: Annotated[
        str | None, typer.Option(help="The directory it applies to, and below (default: cwd).")
    ] = None,
    trust: Annotated[
        bool,
        typer.Option("--yes-i-trust-this-workspace", help="Needed to grant trusted (no sandbox)."),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    revoke: Annotated[bool, typer.Option("--revoke", help="Remove the grant here.")] = False,
    status: Annotated[bool, typer.Option("--status", help="Show the grant here.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="--status as JSON.")] = False,
) -> None:
    """Grant a profile to a workspace (and every directory below it) for a while;
    runs there use it unless --profile says otherwise. Or --revoke it, or --status."""
    from orchestrator.runner.elevate import GrantRequest, audit_writer, grant  # start-up time

    context = host()
    home = context.home
    where = context.resolved_workspace(workspace)
    try:
        if sum((to is not None, revoke, status)) != 1:
            raise UsageError(
                "say one of --to PROFILE, --revoke or --status",
                hint="e.g. codex-box elevate --to workspace-net --for 2h --reason 'pip install'",
            )
        if status:
            _status(home, Path(where), as_json=as_json)
            return
        if revoke:
            _revoke(context, Path(where))
            return
        if duration is None or reason is None:
            raise UsageError("--to needs --for DURATION and --reason TEXT", hint=_EXAMPLE)
        request = GrantRequest(
            workspace=where,
            profile=to or "",
            duration=elevation.parse_duration(duration),
            reason=reason,
            trust_opt_in=trust,
            yes=yes,
        )
        made = grant(context, request, confirm=confirm_on_tty, record=audit_writer(context))
    except CodexBoxError as exc:
        fail(exc)
    typer.echo(
        f"elevated {made.workspace} (and below) to {made.profile} until "
        f"{elevation.iso(made.expires)}\n  grant: {made.path}\n"
        "  revoke it with: codex-box elevate --revoke"
        + (f" --workspace {made.workspace}" if workspace else "")
    )


_EXAMPLE = "e.g. --for 2h --reason 'pip install -r requirements.txt'"


def _status(home: Path, where: Path, *, as_json: bool) -> None:
    found = elevation.find(home, where)
    for ignored in found.ignored:
        typer.echo(f"codex-box: warning: {ignored.warning()}", err=True)
    now = datetime.now(UTC)
    if as_json:
        emit_json(
            {
                "workspace": str(where),
                "grant": _grant_dict(found.grant, now) if found.grant else None,
                "ignored": [{"path": str(i.path), "why": i.why} for i in found.ignored],
            }
        )
        return
    if found.grant is None:
        typer.echo(f"no elevation applies to {where}")
        return
    g = found.grant
    left = str(g.expires - now.replace(microsecond=0))
    typer.echo(
        f"elevated: {g.profile} for {g.workspace} (and below) until "
        f"{elevation.iso(g.expires)} ({left} left)\n"
        f"  by {g.granted_by} at {elevation.iso(g.created)}: {g.reason}\n  grant: {g.path}"
    )


def _grant_dict(g: elevation.Grant, now: datetime) -> dict[str, Any]:
    return {
        "workspace": g.workspace,
        "profile": g.profile,
        "reason": g.reason,
        "created": elevation.iso(g.created),
        "expires": elevation.iso(g.expires),
        "granted_by": g.granted_by,
        "seconds_left": int((g.expires - now).total_seconds()),
        "path": str(g.path),
    }


def _revoke(context: HostContext, where: Path) -> None:
    from orchestrator.runner.elevate import audit_writer, revoke_grant  # start-up time

    found = revoke_grant(context, where, record=audit_writer(context))
    if found is None:
        typer.echo(f"no grant at or above {where}: nothing to revoke")
        return
    what = (
        f"{found.profile} for {found.workspace}"
        if isinstance(found, elevation.Grant)
        else f"{found.path} ({found.why})"
    )
    typer.echo(f"revoked: {what}")
