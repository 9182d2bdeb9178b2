"""Every audit record codex-box writes, built in one place: one builder per record.

Owns: the fields of each record and the wording of its ``reason`` — typed keyword
arguments (the facts) in, a record out that validates against ``record.schema.json``
once the writer has added ``session_id`` and ``run_id`` and the log ``timestamp``,
``seq`` and ``prev``. Builders are named after the schema's ``operation``, with the
event when one operation has several (``elevation_granted``, ``elevation_used`` …);
``tests/unit/audit/test_audit_records.py`` calls every public function here and validates
what it returns.
Does not own: deciding when to record (``runner``, ``policy.gate``, ``netproxy``, the
front doors), writing, sanitizing or chaining (``log``, ``redact``), or the facts'
own wording (a grant's ``describe()``, a resolution's chain: passed in as text).

Callers do ``log.append(records.x(...))`` (or the run's writer, which adds the ids):
no record is put together anywhere else, so a field cannot be misspelt in one caller
or forgotten in another, and the schema test covers every shape there is.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator.core.spec import RunResult

Record = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyFacts:
    """The execution policy's verdict, as the records of one launch carry it."""

    mode: str  # enforce | audit-only | off
    decision: str | None = None  # safe | match | unverified | forbidden; None: mode off
    reason: str = ""  # the evaluation's one-line summary
    rules: tuple[str, ...] = ()  # the rules that decided (file:line)
    approval: str | None = None  # how an unverified command was let through, or refused

    def fields(self) -> Record:
        if self.decision is None:
            return {"policy_mode": self.mode}
        return {
            "policy_mode": self.mode,
            "policy_decision": self.decision,
            "policy_reason": self.reason,
            "policy_rules": list(self.rules),
            **({"approval": self.approval} if self.approval else {}),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Launch:
    """What every record of one launch repeats about it."""

    profile: str
    profile_source: str  # resolve's Source value: flag, env, file, grant, config, default
    backend: str
    workspace: str
    policy: PolicyFacts | None = None  # None: the policy was not consulted

    def fields(self) -> Record:
        return {
            "profile": self.profile,
            "profile_source": self.profile_source,
            "backend": self.backend,
            "workspace": self.workspace,
            **(self.policy.fields() if self.policy else {}),
        }


def _command(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def _utc(moment: datetime) -> str:
    """The schema's ``expires``: UTC, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- command_exec: a launch, decided and ended --------------------------------------


def command_allowed(*, argv: Sequence[str], launch: Launch, chosen_by: str) -> Record:
    """The launch is decided: it goes ahead. ``chosen_by``: the resolution's describe()."""
    return {
        "operation": "command_exec",
        "target": _command(argv),
        **launch.fields(),
        "phase": "decided",
        "decision": "allowed",
        "reason": f"profile {launch.profile} ({chosen_by})",
    }


def command_denied(
    *,
    argv: Sequence[str],
    error: str,
    profile: str | None = None,
    profile_source: str | None = None,
    policy: PolicyFacts | None = None,
) -> Record:
    """The launch is refused, or failed before a backend was chosen: nothing ran.
    ``error``: the error's one line; ``profile``: when resolution got that far."""
    return {
        "operation": "command_exec",
        "target": _command(argv),
        **({"profile": profile} if profile is not None else {}),
        **({"profile_source": profile_source} if profile_source is not None else {}),
        **(policy.fields() if policy else {}),
        "phase": "decided",
        "decision": "denied",
        "reason": error,
    }


def command_ended(
    *,
    argv: Sequence[str],
    launch: Launch,
    result: RunResult,
    unaudited: int = 0,
    credentials: Sequence[Mapping[str, Any]] = (),
    cancelled: bool = False,
) -> Record:
    """The command ran and ended. ``unaudited``: egress refusals whose record failed;
    ``credentials``: each brokered secret injected, per host, and how often;
    ``cancelled``: its caller went away and it was stopped (``serve``)."""
    if result.detail:
        ended = result.detail
    elif result.signal:
        ended = f"killed by signal {result.signal}"
    else:
        ended = f"exited {result.exit_code}"
    if unaudited:
        ended += f"; {unaudited} egress refusals could not be audited"
    if cancelled:
        ended = f"cancelled (its client went away): {ended}"
    return {
        "operation": "command_exec",
        "target": _command(argv),
        **launch.fields(),
        "phase": "ended",
        "decision": "allowed",
        "reason": ended,
        "exit_code": result.exit_code,
        "signal": result.signal,
        "timed_out": result.timed_out,
        "oom_killed": result.oom_killed,
        "duration_ms": round(result.duration_s * 1000),
        **({"cancelled": True} if cancelled else {}),
        **_credentials(credentials),
    }


def _credentials(uses: Sequence[Mapping[str, Any]]) -> Record:
    # Names and hosts only: the values never leave the egress proxy.
    if not uses:
        return {}
    return {
        "credentials": [
            {"secret": str(u["secret"]), "host": str(u["host"]), "count": int(u["count"])}
            for u in uses
        ]
    }


# --- approval: an unverified command, asked about --------------------------------------


def approval(
    *,
    argv: Sequence[str],
    profile: str,
    workspace: str,
    approved: bool,
    approved_by: str,
    why: str,
    policy: PolicyFacts,
) -> Record:
    """A person (or ``--approve``) decided on an unverified command. ``approved_by``:
    ``--approve``, ``terminal`` or ``no terminal``; ``why``: the policy's reasons."""
    return {
        "operation": "approval",
        "target": _command(argv),
        "decision": "requires_approval",
        "profile": profile,
        "workspace": workspace,
        "outcome": "approved" if approved else "refused",
        "approved_by": approved_by,
        "reason": f"unverified: {why}",
        **policy.fields(),
    }


# --- profile_resolve: which profile, and the .codex-profile files judged -------------


def profile_resolved(*, launch: Launch, chosen_by: str, chain: str) -> Record:
    """Which profile applies and from where. ``chosen_by``: the resolution's
    describe(); ``chain``: every source consulted (chain_text())."""
    return {
        "operation": "profile_resolve",
        **launch.fields(),
        "decision": "allowed",
        "target": launch.profile,
        "reason": f"{chosen_by}; chain: {chain}",
    }


def _profile_file(event: str, decision: str, path: str, reason: str) -> Record:
    return {
        "operation": "profile_resolve",
        "approval_event": event,
        "decision": decision,
        "target": path,
        "reason": reason,
        "workspace": os.path.dirname(path),
    }


def profile_file_approved(*, path: str, profile: str, approval: str) -> Record:
    """A .codex-profile at ``path`` approved (``profiles allow``); ``approval``: the
    approval's describe() (by whom, when, which content)."""
    return {
        **_profile_file(
            "approved", "allowed", path, f"approved {path}, which selects {profile} ({approval})"
        ),
        "profile": profile,
    }


def profile_file_revoked(*, path: str, had: bool) -> Record:
    """``profiles deny``: the approval of ``path`` removed (``had``: there was one)."""
    what = "revoked the approval of" if had else "nothing to revoke: no approval of"
    return _profile_file("revoked", "allowed", path, f"{what} {path}")


def profile_file_ignored(*, path: str, why: str) -> Record:
    """A .codex-profile wider than what applies without it, and not approved."""
    return _profile_file("ignored", "denied", path, f"ignored {path}: {why}")


# --- backend_select -------------------------------------------------------------------


def backend_selected(*, launch: Launch, why: str, skipped: Sequence[str] = ()) -> Record:
    """Which backend runs it (``why``), and why each one passed over was (``skipped``)."""
    return {
        "operation": "backend_select",
        **launch.fields(),
        "decision": "allowed",
        "target": launch.backend,
        "reason": why + (f" (skipped: {'; '.join(skipped)})" if skipped else ""),
    }


# --- sandbox_setup --------------------------------------------------------------------


def sandbox_setup_failed(*, argv: Sequence[str], launch: Launch, error: str) -> Record:
    """The backend could not set the sandbox up: nothing ran. ``error``: its one line."""
    return {
        "operation": "sandbox_setup",
        "target": _command(argv),
        **launch.fields(),
        "phase": "ended",
        "decision": "denied",
        "reason": f"sandbox setup failed: {error}",
    }


# --- network_connect ------------------------------------------------------------------


def network_refused(
    *, launch: Launch, target: str, domain: str, method: str, reason: str
) -> Record:
    """A request the egress proxy refused (the proxy's own words: ``netproxy``)."""
    return {
        "operation": "network_connect",
        **launch.fields(),
        "decision": "denied",
        "target": target,
        "domain": domain,
        "method": method,
        "reason": reason,
    }


def credential_refused(
    *, launch: Launch, target: str, domain: str, method: str, reason: str, secret: str
) -> Record:
    """A brokered secret's placeholder sent where it may not go (another host, plain
    HTTP, a URL or a body), or its value reflected by an origin: an exfiltration
    attempt. The secret's name, never its value."""
    return {
        "operation": "credential_use",
        **launch.fields(),
        "decision": "denied",
        "target": target,
        "domain": domain,
        "method": method,
        "secret": secret,
        "reason": reason,
    }


def egress_refused(*, launch: Launch, refusal: Mapping[str, Any]) -> Record:
    """The record of one refusal of the egress proxy (``netproxy.session.Refusal``)."""
    fields = {k: str(refusal[k]) for k in ("target", "domain", "method", "reason")}
    if "secret" in refusal:
        return credential_refused(launch=launch, secret=str(refusal["secret"]), **fields)
    return network_refused(launch=launch, **fields)


# --- elevation: a temporary grant ------------------------------------------------------


def _elevation(event: str, decision: str, profile: str, workspace: str, reason: str) -> Record:
    return {
        "operation": "elevation",
        "grant_event": event,
        "decision": decision,
        "target": profile,
        # What the grant names, when it checked out (an ignored file's claim is only
        # its target): `codex-box audit --profile NAME` finds the grants of NAME.
        **({"profile": profile} if event != "ignored" else {}),
        "reason": reason,
        **({"workspace": workspace} if workspace else {}),
    }


def elevation_granted(*, profile: str, workspace: str, grant: str, expires: datetime) -> Record:
    """``codex-box elevate`` made a grant. ``grant``: its describe()."""
    return {
        **_elevation("granted", "allowed", profile, workspace, f"granted: {grant}"),
        "expires": _utc(expires),
    }


def elevation_refused(*, profile: str, workspace: str, why: str) -> Record:
    """``codex-box elevate`` refused to grant (no opt-in, not confirmed, no terminal)."""
    return _elevation("refused", "denied", profile, workspace, f"elevation refused: {why}")


def elevation_used(*, launch: Launch, profile: str, grant: str, expires: datetime) -> Record:
    """A run used a grant (of ``profile``; ``grant``: its describe()). The launch's
    profile and workspace are the run's (the grant may cover a directory above it)."""
    return {
        **_elevation("used", "allowed", profile, "", f"used: {grant}"),
        "expires": _utc(expires),
        **launch.fields(),
    }


def elevation_revoked(
    *, profile: str, workspace: str, grant: str, expires: datetime | None = None
) -> Record:
    """``elevate --revoke`` removed a grant file. ``grant``: the grant's describe(), or
    for a file that did not check out its path and why; ``expires``: a valid grant's."""
    return {
        **_elevation("revoked", "allowed", profile, workspace, f"revoked: {grant}"),
        **({"expires": _utc(expires)} if expires is not None else {}),
    }


def elevation_ignored(*, profile: str, workspace: str, path: str, why: str) -> Record:
    """A grant file that does not check out, passed over by resolution. ``profile``:
    what the file claims (target only)."""
    return _elevation("ignored", "denied", profile, workspace, f"ignored grant {path}: {why}")


# --- planted_repo ---------------------------------------------------------------------


def planted_repo(*, launch: Launch, where: str, finding: str, quarantined: bool) -> Record:
    """A git repository the run planted, or whose config or hooks it changed.
    ``finding``: the finding's text(); ``quarantined``: quarantine moved it aside."""
    return {
        "operation": "planted_repo",
        **launch.fields(),
        "decision": "denied" if quarantined else "allowed",
        "target": where,
        "reason": finding,
    }


# --- session_start / session_stop: a sandbox that lives across execs -----------------


def session_started(*, launch: Launch, name: str | None, expires: datetime) -> Record:
    """A session's sandbox is built; its execs follow with the same ``session_id``."""
    return {
        "operation": "session_start",
        "target": name or "session",
        **launch.fields(),
        "decision": "allowed",
        "reason": f"profile {launch.profile}, until {_utc(expires)} at most",
        "expires": _utc(expires),
    }


def session_refused(*, name: str | None, error: str, profile: str | None = None) -> Record:
    """A session that was asked for and not started (nothing runs in it)."""
    return {
        "operation": "session_start",
        "target": name or "session",
        **({"profile": profile} if profile is not None else {}),
        "decision": "denied",
        "reason": error,
    }


def session_stopped(
    *,
    launch: Launch,
    name: str | None,
    why: str,
    execs: int,
    duration_s: float,
    credentials: Sequence[Mapping[str, Any]] = (),
) -> Record:
    """The session ended (asked, idle, lifetime, its sandbox died, a signal);
    ``credentials`` as in ``command_ended``, over the session's whole life."""
    return {
        "operation": "session_stop",
        "target": name or "session",
        **launch.fields(),
        "decision": "allowed",
        "reason": f"{why}; {execs} execs",
        "duration_ms": round(duration_s * 1000),
        **_credentials(credentials),
    }


# --- file_read / file_write: a file tool of `codex-box mcp` -----------------------------


def file_read(
    *, path: str, profile: str, workspace: str, allowed: bool, reason: str, size: int | None = None
) -> Record:
    """An agent read (or listed) ``path`` in the workspace, or was refused; ``size``: the
    bytes read."""
    return _file_op("file_read", path, profile, workspace, allowed, reason, size)


def file_write(
    *, path: str, profile: str, workspace: str, allowed: bool, reason: str, size: int | None = None
) -> Record:
    """An agent wrote ``path`` in the workspace, or was refused; ``size``: the bytes
    written."""
    return _file_op("file_write", path, profile, workspace, allowed, reason, size)


def _file_op(
    operation: str,
    path: str,
    profile: str,
    workspace: str,
    allowed: bool,
    reason: str,
    size: int | None,
) -> Record:
    return {
        "operation": operation,
        "target": path,
        "profile": profile,
        "workspace": workspace,
        "decision": "allowed" if allowed else "denied",
        "reason": reason,
        **({"bytes": size} if size is not None else {}),
    }


# --- mcp_tool_call: a tool of a server `codex-box mcp wrap` runs -------------------------


def _tool_target(tool: str, arguments: Any) -> str:
    """The tool and its arguments as one line (the log redacts it like a command line:
    a secret-named key's value, a known key shape)."""
    if arguments is None:
        return tool
    return f"{tool} {json.dumps(arguments, ensure_ascii=False, sort_keys=True, default=str)}"


def mcp_tool_called(
    *, tool: str, arguments: Any, profile: str, workspace: str, allowed: bool, reason: str
) -> Record:
    """An agent called ``tool`` of a wrapped MCP server: forwarded, or refused by the
    allow/deny lists (``reason``) without reaching it; or one of ``codex-box mcp``'s own
    questions (check, profiles, explain), which launch nothing."""
    return {
        "operation": "mcp_tool_call",
        "decision": "allowed" if allowed else "denied",
        "phase": "decided",
        "target": _tool_target(tool, arguments),
        "tool": tool,
        "profile": profile,
        "workspace": workspace,
        "reason": reason,
    }


def mcp_tool_answered(
    *, tool: str, arguments: Any, profile: str, workspace: str, is_error: bool | None
) -> Record:
    """The wrapped server's answer to a call: its error flag (a JSON-RPC error or
    ``isError``); None when no answer came (the server ended first)."""
    return {
        "operation": "mcp_tool_call",
        "decision": "allowed",
        "phase": "ended",
        "target": _tool_target(tool, arguments),
        "tool": tool,
        "profile": profile,
        "workspace": workspace,
        "tool_error": is_error,
        "reason": (
            "no answer: the server ended"
            if is_error is None
            else "the tool reported an error"
            if is_error
            else "answered"
        ),
    }
