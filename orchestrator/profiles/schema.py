"""Profile keys as a schema: every key a profile file may set, the ``Profile``
attribute it fills, its type, and its strictness order; the built-in and alias names;
and profiles as plain data (``values_of``, ``changes``).

Owns: what a key is and which value is stricter (one order for the parser that
refuses a loosening user profile, and for ``profiles.widening``, which tells whether a
``.codex-profile`` widens). Does not own: reading files (``profiles.parser``) or the
store of profiles (``profiles.store``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from orchestrator.core.profile import Access, Capabilities, Network, PlantedRepo, Profile

BUILTIN_DIR = Path(__file__).resolve().parent  # the built-in YAML sits beside this code
BUILTIN_NAMES = ("offline", "net-read-only", "workspace", "workspace-net", "trusted")
DEFAULT_PROFILE = "offline"

# Codex's own names (config `sandbox_mode`, `--sandbox`).
ALIASES: Mapping[str, str] = {
    "read-only": "offline",
    "workspace-write": "workspace",
    "danger-full-access": "trusted",
}

SECCOMP_NAMES = ("offline", "default")
# Files in apparmor/, the profile names they load under. Strictness order for user
# profiles: the two without network, then the two with it (each pair is the same
# policy, so a user profile may keep its own pair's first name or tighten).
APPARMOR_NAMES = (
    "codex-box-offline",
    "codex-box-workspace",
    "codex-box-net-read-only",
    "codex-box-workspace-net",
)


@dataclass(frozen=True, slots=True)
class Field:
    attr: str  # Profile attribute
    kind: type | tuple[type, ...]
    # Strictness order, most restrictive first; None = not ordered (checked otherwise).
    order: tuple[Any, ...] | None = None


FIELDS: Mapping[str, Field] = {
    "network.mode": Field("network", Network, (Network.NONE, Network.READ_ONLY, Network.FULL)),
    # Domain lists (domains.py); their tightening is checked pattern by pattern.
    "network.allow": Field("allow_domains", tuple),
    "network.deny": Field("deny_domains", tuple),
    "network.inspect_tls": Field("inspect_tls", bool, (True, False)),
    "network.allow_local_hosts": Field("allow_local_hosts", bool, (False, True)),
    "filesystem.root": Field("rootfs", Access, (Access.READ_ONLY, Access.READ_WRITE)),
    "filesystem.workspace": Field("workspace", Access, (Access.READ_ONLY, Access.READ_WRITE)),
    "filesystem.private_tmp": Field("private_tmp", bool, (False, True)),
    "filesystem.writable_paths": Field("writable_paths", list),
    "filesystem.protected_paths": Field("protected_paths", list),
    # Default protected names a user profile removes on purpose (checked in
    # ProfileParser._unprotect; a .codex-profile may never use it).
    "filesystem.unprotect": Field("unprotected", list),
    # Host paths (~/…, /abs, globs such as **/.env) no sandboxed run may read.
    "filesystem.deny_read": Field("deny_read", list),
    "filesystem.on_planted_repo": Field(
        "on_planted_repo", PlantedRepo, (PlantedRepo.QUARANTINE, PlantedRepo.WARN)
    ),
    "process.sandboxed": Field("sandboxed", bool, (True, False)),
    "process.seccomp": Field("seccomp", (str, type(None)), ("offline", "default", None)),
    "process.apparmor": Field("apparmor", (str, type(None)), (*APPARMOR_NAMES, None)),
    "process.capabilities": Field(
        "capabilities", Capabilities, (Capabilities.NONE, Capabilities.DEFAULT)
    ),
    "process.requires_opt_in": Field("requires_opt_in", bool, (True, False)),
    # Tools of a server `codex-box mcp wrap` runs (names or fnmatch patterns): an empty
    # allow list admits every tool; a tightening may only narrow one and add to the other.
    "mcp.allow_tools": Field("mcp_allow_tools", list),
    "mcp.deny_tools": Field("mcp_deny_tools", list),
}
# ``secrets`` is read by profiles.secrets (a mapping of names, not a key per field).
TOP_KEYS = (
    "name",
    "description",
    "extends",
    "network",
    "filesystem",
    "process",
    "mcp",
    "secrets",
)
SECTIONS = ("network", "filesystem", "process", "mcp")
OPTIONAL_IN_BUILTIN = {"filesystem.writable_paths", "filesystem.protected_paths"}
OPTIONAL_IN_BUILTIN |= {"filesystem.unprotect", "filesystem.on_planted_repo"}
OPTIONAL_IN_BUILTIN |= {"filesystem.deny_read"}
OPTIONAL_IN_BUILTIN |= {"network.allow", "network.deny", "network.inspect_tls"}
OPTIONAL_IN_BUILTIN |= {"network.allow_local_hosts"}
OPTIONAL_IN_BUILTIN |= {"process.sandboxed", "process.requires_opt_in"}
OPTIONAL_IN_BUILTIN |= {"mcp.allow_tools", "mcp.deny_tools"}


def canonical_name(name: str) -> str:
    return ALIASES.get(name, name)


def values_of(profile: Profile) -> dict[str, Any]:
    """Every profile key (``network.mode`` …) and its value as plain data."""
    return {dotted: _plain(getattr(profile, f.attr)) for dotted, f in FIELDS.items()}


def changes(base: Profile, profile: Profile) -> dict[str, Any]:
    """The keys whose values ``profile`` changed from ``base``."""
    old, new = values_of(base), values_of(profile)
    return {k: v for k, v in new.items() if old[k] != v}


def show_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    return show_scalar(value)


def _plain(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    return list(value) if isinstance(value, tuple) else value


def show_scalar(value: Any) -> str:
    return (
        "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )
