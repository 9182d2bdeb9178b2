"""Granting and revoking what widens a workspace's profile: elevation grants and
approvals of a ``.codex-profile``, each with its audit record.

Owns: the steps and their order — check, ask (unless told yes), write, record — and the
rule that nothing is granted without its record (a grant or approval whose record cannot
be written is removed again) and nothing is removed silently (the record comes first).
Does not own: grant or approval files and their checks (``resolve.elevation``,
``resolve.approval``), asking (the front door passes ``confirm``), printing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.audit import records
from orchestrator.core.errors import AuditError, CodexBoxError, Refused, UsageError
from orchestrator.core.options import Confirm
from orchestrator.core.profile import Profile
from orchestrator.resolve import elevation
from orchestrator.resolve.precedence import profile_of, without_file
from orchestrator.resolve.profile_file import PROFILE_FILE, find_profile_file, read_profile_file

from .context import HostContext, new_id

if TYPE_CHECKING:
    from orchestrator.resolve import approval as profile_approval

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
    """Records go to the same log, with the same sanitizing and sinks, as a run's. A
    config.toml that does not load is an error here (exit 125): a grant or revocation
    whose record would miss the configured sinks is not made."""
    log = context.audit_log(strict=True)
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


def profile_file_target(
    context: HostContext, path: str | None, workspace: str | None, *, must_exist: bool
) -> Path:
    """The realpath of the .codex-profile meant: PATH (a file or its directory), else
    the nearest at or above the workspace."""
    if path is None:
        where = Path(os.path.realpath(context.workspace_path(workspace)))
        found = find_profile_file(where)
        if found is None:
            raise UsageError(f"no {PROFILE_FILE} at or above {where}", hint="name the file: PATH")
        return found.path
    given = Path(os.path.abspath(os.path.join(context.cwd, path)))
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


def approval_state(home: Path, approval: profile_approval.Approval) -> str:
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
