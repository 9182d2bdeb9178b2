"""Granting and revoking what widens a workspace's profile: elevation grants and
approvals of a ``.codex-profile``, each with its audit record.

Owns: the steps and their order — check, ask (unless told yes), write, record — and the
rule that nothing is granted without its record (a grant or approval whose record cannot
be written is removed again) and nothing is removed silently (the record comes first).
Does not own: grant or approval files and their checks (``resolve.elevation``,
``resolve.approval``), asking (the front door passes ``confirm``), printing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.audit import records
from orchestrator.core.errors import AuditError, CodexBoxError, Refused, UsageError
from orchestrator.core.profile import Profile
from orchestrator.resolve import elevation
from orchestrator.resolve.precedence import profile_of, without_file
from orchestrator.resolve.profile_file import read_profile_file

from .context import HostContext, new_id

if TYPE_CHECKING:
    from orchestrator.resolve import approval as profile_approval

Confirm = Callable[[str], bool | None]  # None: nobody can be asked (no terminal)
Record = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantRequest:
    workspace: str  # a realpath
    profile: str
    duration: timedelta
    reason: str
    trust_opt_in: bool = False
    yes: bool = False


def audit_writer(context: HostContext) -> Record:
    """Records go to the same log, with the same sanitizing and sinks, as a run's."""
    log = context.audit_log()
    ids = {"session_id": context.session_id, "run_id": new_id()}
    return lambda record: log.append({**ids, **record})


def grant(
    context: HostContext,
    request: GrantRequest,
    *,
    confirm: Confirm,
    record: Record,
    now: datetime | None = None,
) -> elevation.Grant:
    """Check, ask (unless ``yes``), write the grant and its audit record. Every refusal
    is recorded before it is raised; a grant whose record cannot be written is removed."""
    home = context.home
    reason = elevation.check_reason(request.reason)
    elevation.check_workspace(request.workspace)
    profile = context.store.get(request.profile, source="--to")
    moment = now or datetime.now(UTC)
    expires = elevation.iso(moment + request.duration)

    def refuse(message: str, hint: str) -> Refused:
        record(
            records.elevation_refused(
                profile=profile.name, workspace=request.workspace, why=message
            )
        )
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
        home,
        workspace=request.workspace,
        profile=profile.name,
        reason=reason,
        duration=request.duration,
        granted_by=context.user,
        opt_in=request.trust_opt_in and profile.requires_opt_in,
        now=moment,
    )
    try:
        record(
            records.elevation_granted(
                profile=made.profile,
                workspace=made.workspace,
                grant=made.describe(),
                expires=made.expires,
            )
        )
    except AuditError:
        elevation.revoke(home, made)  # no grant without its record
        raise
    return made


def revoke_grant(
    context: HostContext, where: Path, *, record: Record
) -> elevation.Grant | elevation.Ignored | None:
    """Remove the grant nearest at or above ``where`` (None: there was none)."""
    found = elevation.nearest(context.home, where)
    if found is None:
        return None
    expires = found.expires if isinstance(found, elevation.Grant) else None
    revoked = records.elevation_revoked(
        profile=found.profile, workspace=found.workspace, grant=found.describe(), expires=expires
    )
    record(revoked)  # on the record first: no silent removal
    elevation.revoke(context.home, found)
    return found


@dataclass(frozen=True, slots=True)
class Approved:
    approval: profile_approval.Approval
    profile: Profile  # what the file selects
    base: Profile  # what applies there without it


def approve_file(context: HostContext, target: Path, *, record: Record) -> Approved:
    """Approve this exact content of a .codex-profile; an opt-in profile stays refused."""
    from orchestrator.resolve import approval as profile_approval  # approvals only: start-up

    found = read_profile_file(target)
    if found is None:
        raise UsageError(f"{target} is empty: it selects nothing", hint="write a profile in it")
    store = context.store
    profile = profile_of(store, found)  # trusted (opt-in) stays refused: exit 126
    base = without_file(target, config=context.config, store=store, codex_home=context.home)
    approval = profile_approval.approve(
        context.home, target, found.text.encode(), profile=profile.name, approved_by=context.user
    )
    try:
        record(
            records.profile_file_approved(
                path=approval.path, profile=approval.profile, approval=approval.describe()
            )
        )
    except CodexBoxError:
        profile_approval.revoke(context.home, target)  # no approval without its record
        raise
    return Approved(approval, profile, base.profile)


def revoke_file(context: HostContext, target: Path, *, record: Record) -> bool:
    """Revoke a .codex-profile's approval; whether there was one. Recorded either way."""
    from orchestrator.resolve import approval as profile_approval  # approvals only: start-up

    had = profile_approval.revoke(context.home, target)
    record(records.profile_file_revoked(path=str(target), had=had))
    return had
