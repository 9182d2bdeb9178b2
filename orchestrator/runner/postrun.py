"""The planted-repository check around one run, as the runner uses it.

Owns: when the check applies (a sandboxed run that may write its workspace), holding
the workspace as it was pinned (``SandboxSpec.identities``) from before the run to after
it, and turning findings into audit records and warning lines.
Does not own: the walk and comparison (``planted``), writing records (the caller's
audit log).

Why a pinned root: after the run, a concurrent sandbox that can write a parent of the
workspace could swap one of its components for a link; a walk (and, with
``on_planted_repo: quarantine``, renames) by the workspace's *name* would then act on
the link's target — another project's repository. Every path the check uses starts at
``/proc/self/fd/N``, the directory compile checked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orchestrator.audit import records
from orchestrator.compile.spec import reopen_checked
from orchestrator.core.errors import AuditError
from orchestrator.core.log import debug
from orchestrator.core.paths import inside
from orchestrator.core.spec import SandboxSpec

if TYPE_CHECKING:  # loaded only for a run that may write its workspace (start-up time)
    from orchestrator.hardening import planted


class PostRunCheck:
    def __init__(self, spec: SandboxSpec, *, quarantine_id: str | None) -> None:
        """Take the snapshot now (before the run); nothing when the check does not apply
        or cannot be made (then ``finish`` says so)."""
        self.quarantine_id = quarantine_id
        self.fd: int | None = None
        self.before: planted.Snapshot | None = None
        self.problem = ""
        if not spec.sandboxed or not any(inside(spec.workspace, r) for r in spec.writable_roots):
            return
        from orchestrator.hardening import planted

        self.planted = planted
        try:
            self.fd = reopen_checked(spec.workspace, spec.identity_of(spec.workspace))
            self.before = planted.snapshot(f"/proc/self/fd/{self.fd}")
        except Exception as exc:  # never let the check stop or change the run
            debug("planted-repository snapshot failed", error=str(exc))
            self.problem = f"the planted-repository check could not start: {exc}"
            self.close()

    def finish(self) -> tuple[list[planted.Finding], list[str]]:
        """Repositories and host-tool files the run created or changed (quarantined when
        asked), and what kept the check from being whole."""
        try:
            if self.before is None:
                return [], [self.problem] if self.problem else []
            try:
                findings, after = self.planted.check(self.before, quarantine_id=self.quarantine_id)
            except Exception as exc:  # a failed check is reported, never the run's result
                return [], [f"the planted-repository check failed: {exc}"]
            problems = []
            if not (self.before.complete and after.complete):
                looked_at = min(self.before.looked_at, after.looked_at)
                problems.append(
                    f"the planted-repository check ran out of time "
                    f"({self.planted.BUDGET_S * 1000:g} ms) after {looked_at} directories: "
                    "repositories planted deeper in the workspace were not looked for"
                )
            return findings, problems
        finally:
            self.close()

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def report(
    findings: list[planted.Finding],
    problems: list[str],
    *,
    write: Callable[[dict[str, Any]], None],
    launch: records.Launch,
) -> tuple[str, ...]:
    """One audit record and one warning line per finding; a record that cannot be
    written is itself a warning (the run has ended: its result must still show)."""
    warnings = [*problems]
    for finding in findings:
        warnings.append(finding.text())
        try:
            write(
                records.planted_repo(
                    launch=launch,
                    where=finding.where,
                    finding=finding.text(),
                    quarantined=bool(finding.moved),
                )
            )
        except AuditError as exc:
            warnings.append(f"could not audit the finding above: {exc.one_line()}")
    return tuple(warnings)
