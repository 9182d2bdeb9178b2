"""Human- and machine-readable renderings of profiles, resolutions, results and audit records.

Owns: turning data into strings and dicts. Does not own: printing (``cli``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from orchestrator.core.errors import printable
from orchestrator.core.profile import Access, Network, Profile
from orchestrator.core.spec import RunResult
from orchestrator.profiles.store import ALIASES
from orchestrator.resolve.precedence import Resolution

NETWORK_TEXT = {
    Network.NONE: "none",
    Network.READ_ONLY: "read-only through the egress proxy (GET/HEAD/OPTIONS; HTTPS by domain)",
    Network.FULL: "full",
}


def network_text(profile: Profile) -> str:
    text = NETWORK_TEXT[profile.network]
    if profile.network is Network.FULL and profile.uses_egress_proxy():
        text = "through the egress proxy"
    if profile.uses_egress_proxy():
        text += f" to {', '.join(profile.allow_domains) or 'any domain (ports 80/443)'}"
        if profile.deny_domains:
            text += f" except {', '.join(profile.deny_domains)}"
        if profile.inspect_tls:
            text += "; TLS inspected (methods enforced on HTTPS)"
    return text


def profile_dict(profile: Profile) -> dict[str, Any]:
    return {
        "name": profile.name,
        "description": profile.description,
        **({"extends": profile.extends} if profile.extends else {}),
        "origin": profile.origin,
        "network": profile.network.value,
        "egress": {
            "via_proxy": profile.uses_egress_proxy(),
            "allow": list(profile.allow_domains),
            "deny": list(profile.deny_domains),
            "inspect_tls": profile.inspect_tls,
            "allow_local_hosts": profile.allow_local_hosts,
        },
        "filesystem": {
            "root": profile.rootfs.value,
            "workspace": profile.workspace.value,
            "private_tmp": profile.private_tmp,
            "writable_paths": list(profile.writable_paths),
            "protected_paths": list(profile.protected_paths),
        },
        "process": {
            "sandboxed": profile.sandboxed,
            "seccomp": profile.seccomp,
            "apparmor": profile.apparmor,
            "capabilities": profile.capabilities.value,
            "requires_opt_in": profile.requires_opt_in,
        },
        "allows": {
            "network": profile.allows_network(),
            "write": profile.allows_write(),
            "full_write": profile.allows_full_write(),
        },
    }


def summary(profile: Profile) -> str:
    if not profile.sandboxed:
        return "no sandbox: full filesystem, network and processes (explicit opt-in)"
    writes = "workspace + private /tmp" if profile.workspace is Access.READ_WRITE else "nothing"
    if profile.writable_paths:
        writes += " + " + ", ".join(profile.writable_paths)
    return f"network {network_text(profile)}; reads everything; writes {writes}"


def profiles_table(profiles: Iterable[Profile]) -> str:
    rows = [("PROFILE", "NETWORK", "WRITES", "SANDBOX", "ORIGIN")]
    for p in profiles:
        writes = (
            "everything"
            if p.allows_full_write()
            else "workspace+/tmp"
            if p.allows_write()
            else "nothing"
        )
        if p.writable_paths:
            writes += f" (+{len(p.writable_paths)})"
        sandbox = "none (opt-in)" if not p.sandboxed else f"seccomp:{p.seccomp}, caps:none"
        rows.append((p.name, p.network.value, writes, sandbox, p.origin))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    aliases = ", ".join(f"{a} → {t}" for a, t in ALIASES.items())
    return "\n".join([*lines, "", f"aliases: {aliases}"])


def resolution_dict(resolution: Resolution) -> dict[str, Any]:
    return {
        "profile": resolution.profile.name,
        "source": resolution.source.value,
        "detail": resolution.detail,
        "summary": summary(resolution.profile),
        # Each .codex-profile judged on the way (approved, narrows, ignored as wider).
        **({"profile_files": [f.as_dict() for f in resolution.files]} if resolution.files else {}),
    }


def resolution_text(resolution: Resolution) -> str:
    return (
        f"{resolution.profile.name} (from {resolution.describe()})\n  {summary(resolution.profile)}"
    )


RESULT_VERSION = 1  # result.schema.json's; a field removed or changed in meaning bumps it


def result_dict(
    result: RunResult,
    *,
    run_id: str,
    session_id: str,
    profile: str,
    session: str | None = None,
    decision: str | None = None,
    audit: Sequence[int] = (),
) -> dict[str, Any]:
    """The result contract (``runner/result.schema.json``) of a run or an exec: the same
    for ``run --json``, ``exec --json``, ``serve`` and the CI drivers. ``session``: the
    session's name, for an exec; ``decision``: the execution policy's (None when off);
    ``audit``: the ``seq`` of each audit record the launch wrote."""
    return {
        "version": RESULT_VERSION,
        "run_id": run_id,
        "session_id": session_id,
        "profile": profile,
        "backend": result.backend,
        "exit_code": result.exit_code,
        "signal": result.signal,
        "timed_out": result.timed_out,
        "oom_killed": result.oom_killed,
        "duration_ms": round(result.duration_s * 1000),
        "detail": result.detail,
        "session": session,
        "decision": decision,
        "audit": list(audit),
    }


def audit_line(record: Mapping[str, Any]) -> str:
    when = str(record.get("timestamp", "?"))[:19].replace("T", " ")
    decision = str(record.get("decision", "?"))
    phase = str(record.get("phase", ""))
    exit_code = record.get("exit_code")
    outcome = f"exit {exit_code}" if exit_code is not None else phase
    # elevation: granted, used, …; a .codex-profile: approved, revoked, ignored
    outcome = str(record.get("grant_event") or record.get("approval_event") or outcome)
    reason = record.get("reason")
    return printable(
        # !s: a damaged log may hold null, a list or an object in any field.
        f"{when}  {decision:<8} {record.get('operation', '?')!s:<13} "
        f"{record.get('profile', '-')!s:<14} {outcome:<8} {record.get('target', '')}"
        + (f"  — {reason}" if decision != "allowed" and reason else "")
    )
