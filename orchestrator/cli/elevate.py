"""``codex-box elevate``: grant a profile to a workspace for a while, revoke it, show it.

Part of the command line (it prints and exits, like ``cli``). Owns: the options, the
confirmation question, and the audit records of granting, refusing and revoking.
Does not own: grant files or their checks (``elevation``), precedence (``resolve``).

Granting is done by ``grant()``, which takes the question-asker (``confirm``) and the
audit writer (``record``) as arguments, so tests answer the question themselves.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.core.errors import AuditError, CodexBoxError, Refused, UsageError
from orchestrator.profiles.store import ProfileStore
from orchestrator.resolve import elevation
from orchestrator.settings.config import codex_home, load_config

Confirm = Callable[[str], bool | None]  # None: nobody can be asked (no terminal)
Record = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantRequest:
    home: Path
    workspace: str  # a realpath
    profile: str
    duration: timedelta
    reason: str
    trust_opt_in: bool = False
    yes: bool = False


def grant(
    request: GrantRequest, *, confirm: Confirm, record: Record, now: datetime | None = None
) -> elevation.Grant:
    """Check, ask (unless ``yes``), write the grant and its audit record. Every refusal
    is recorded before it is raised; a grant whose record cannot be written is removed."""
    reason = elevation.check_reason(request.reason)
    elevation.check_workspace(request.workspace)
    profile = ProfileStore(codex_home=request.home).get(request.profile, source="--to")
    moment = now or datetime.now(UTC)
    expires = elevation.iso(moment + request.duration)

    def refuse(message: str, hint: str) -> Refused:
        record(elevation.record_refused(profile.name, request.workspace, message))
        return Refused(message, hint=hint)

    if profile.requires_opt_in and not request.trust_opt_in:
        raise refuse(
            f"'{profile.name}' runs with NO sandbox; elevating to it needs "
            "--yes-i-trust-this-workspace",
            hint="add --yes-i-trust-this-workspace if you trust everything under "
            f"{request.workspace}",
        )
    if not request.yes:
        sandbox = "NO sandbox" if not profile.sandboxed else f"network {profile.network.value}"
        answer = confirm(
            f"Elevate {request.workspace} (and below) to '{profile.name}' ({sandbox}) "
            f"until {expires}, reason: {reason!r}?"
        )
        if answer is None:
            raise refuse(
                "no terminal to confirm the elevation on",
                hint="pass --yes to confirm it on the command line",
            )
        if not answer:
            raise refuse("elevation not confirmed", hint="answer y to grant it")
    made = elevation.create(
        request.home,
        workspace=request.workspace,
        profile=profile.name,
        reason=reason,
        duration=request.duration,
        granted_by=_user(),
        opt_in=request.trust_opt_in and profile.requires_opt_in,
        now=moment,
    )
    try:
        record(elevation.record_granted(made))
    except AuditError:
        elevation.revoke(request.home, made)  # no grant without its record
        raise
    return made


def audit_writer(environ: Mapping[str, str], home: Path) -> Record:
    """Records go to the same log, with the same sanitizing and sinks, as a run's."""
    from orchestrator.audit.log import LOG_NAME, AuditLog, Sanitizer
    from orchestrator.audit.sinks import sinks_for
    from orchestrator.runner.pipeline import SESSION_ENV, new_id

    settings = load_config(home).audit
    log = AuditLog(
        home / LOG_NAME,
        sanitizer=Sanitizer(user=_user(), home=environ.get("HOME") or str(Path.home())),
        max_bytes=settings.max_bytes,
        keep=settings.keep,
        sinks=sinks_for(settings),
    )
    ids = {"session_id": environ.get(SESSION_ENV) or new_id(), "run_id": new_id()}
    return lambda record: log.append({**ids, **record})


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


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
    from .app import _confirm_on_tty, _emit_json, _fail

    environ = dict(os.environ)
    home = codex_home(environ)
    where = os.path.realpath(workspace or os.getcwd())
    try:
        if sum((to is not None, revoke, status)) != 1:
            raise UsageError(
                "say one of --to PROFILE, --revoke or --status",
                hint="e.g. codex-box elevate --to workspace-net --for 2h --reason 'pip install'",
            )
        if status:
            _status(home, Path(where), as_json=as_json, emit=_emit_json)
            return
        if revoke:
            _revoke(home, Path(where), record=audit_writer(environ, home))
            return
        if duration is None or reason is None:
            raise UsageError("--to needs --for DURATION and --reason TEXT", hint=_EXAMPLE)
        request = GrantRequest(
            home=home,
            workspace=where,
            profile=to or "",
            duration=elevation.parse_duration(duration),
            reason=reason,
            trust_opt_in=trust,
            yes=yes,
        )
        made = grant(request, confirm=_confirm_on_tty, record=audit_writer(environ, home))
    except CodexBoxError as exc:
        _fail(exc)
    typer.echo(
        f"elevated {made.workspace} (and below) to {made.profile} until "
        f"{elevation.iso(made.expires)}\n  grant: {made.path}\n"
        "  revoke it with: codex-box elevate --revoke"
        + (f" --workspace {made.workspace}" if workspace else "")
    )


_EXAMPLE = "e.g. --for 2h --reason 'pip install -r requirements.txt'"


def _status(home: Path, where: Path, *, as_json: bool, emit: Callable[[Any], None]) -> None:
    found = elevation.find(home, where)
    for ignored in found.ignored:
        typer.echo(f"codex-box: warning: {ignored.warning()}", err=True)
    now = datetime.now(UTC)
    if as_json:
        emit(
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


def _revoke(home: Path, where: Path, *, record: Record) -> None:
    found = elevation.nearest(home, where)
    if found is None:
        typer.echo(f"no grant at or above {where}: nothing to revoke")
        return
    record(elevation.record_revoked(found))  # on the record first: no silent removal
    elevation.revoke(home, found)
    what = (
        f"{found.profile} for {found.workspace}"
        if isinstance(found, elevation.Grant)
        else f"{found.path} ({found.why})"
    )
    typer.echo(f"revoked: {what}")
