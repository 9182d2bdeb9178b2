"""When one profile is wider than another: the test a ``.codex-profile`` must pass to
apply without approval (``resolve.approval``, ``resolve``).

Owns: ``wider``, key by key, over every profile key, using ``profiles.store``'s
strictness orders (``FIELDS``) so the orders are written once. Does not own: the orders
themselves, or what happens to a wider file (``resolve``).

Every key counts: the network mode (none < read-only < full), the allow list (an empty
one admits everything), the deny list, TLS inspection turned off, local hosts turned on,
root and workspace read-only → read-write, writable paths added, protected paths
removed (or unprotected), deny_read entries removed, a planted repository only warned
about, seccomp offline → default → none, the AppArmor order, capabilities, leaving the
sandbox.
``filesystem.private_tmp`` on is wider: a private /tmp is a writable place (somewhere
to drop and run a download) that a profile without it does not have.
"""

from __future__ import annotations

from typing import Any

from orchestrator.core import domains
from orchestrator.core.profile import Access, Network, Profile

from .schema import FIELDS, changes, show_value, values_of

# With no network at all these decide nothing, so a file that turns the network off is
# never "wider" because of them.
_NETWORK_RULES = frozenset(
    {"network.allow", "network.deny", "network.inspect_tls", "network.allow_local_hosts"}
)
# More places to write, which a profile that writes the whole root already has.
_WRITES = frozenset({"filesystem.private_tmp", "filesystem.writable_paths"})
# Not an access but the question guarding one (every access it guards is compared on
# its own); a .codex-profile can never select an opt-in profile in the first place.
_NOT_ACCESS = ("process.requires_opt_in",)


def wider(base: Profile, profile: Profile) -> tuple[str, ...]:
    """Every way ``profile`` allows more than ``base``, one phrase per key (empty: it
    only narrows, or is the same). Keys that narrow on one axis do not make up for one
    that widens on another: incomparable profiles count as wider."""
    if not base.sandboxed:
        return ()  # no sandbox at all: there is no more access to give
    old = values_of(base)
    found = []
    for key, new in changes(base, profile).items():
        if key in _NOT_ACCESS or (key in _NETWORK_RULES and profile.network is Network.NONE):
            continue
        if key in _WRITES and base.rootfs is Access.READ_WRITE:
            continue  # it may write everywhere already
        how = _widens(key, old[key], new)
        if how:
            found.append(f"{key} {how}")
    return tuple(found)


def _widens(key: str, old: Any, new: Any) -> str:
    """How ``new`` allows more than ``old`` for ``key``, or "" when it does not."""
    field = FIELDS[key]
    try:
        if field.attr == "allow_domains":  # an empty list admits every domain
            if not old:
                return ""
            if not new:
                return f"{show_value(old)} → every domain"
            extra = [p for p in new if not _covered(p, old)]
            return f"admits {', '.join(extra)}" if extra else ""
        if field.attr == "deny_domains":
            dropped = [p for p in old if not _covered(p, new)]
            return f"no longer denies {', '.join(dropped)}" if dropped else ""
    except domains.PatternError:
        return f"{show_value(old)} → {show_value(new)}"  # cannot tell: fail closed
    if field.attr == "mcp_allow_tools":  # an empty list admits every tool
        if not old:
            return ""
        added = [t for t in new if t not in old]
        return f"admits {', '.join(added) or 'every tool'}" if added or not new else ""
    if field.attr == "mcp_deny_tools":
        dropped = sorted(set(old) - set(new))
        return f"no longer denies {', '.join(dropped)}" if dropped else ""
    if field.attr in ("writable_paths", "unprotected"):  # each name given away widens
        added = sorted(set(new) - set(old))
        return f"adds {', '.join(added)}" if added else ""
    if field.attr == "deny_read":  # a path no longer masked is readable again
        dropped = sorted(set(old) - set(new))
        return f"no longer denies {', '.join(dropped)}" if dropped else ""
    if field.attr == "protected_paths":
        dropped = sorted(set(old) - set(new))
        return f"no longer protects {', '.join(dropped)}" if dropped else ""
    order = field.order
    # A value outside the strictness order (or a key without one) cannot be ranked:
    # treat the change as widening rather than guess.
    if order is None or old not in order or new not in order or order.index(new) > order.index(old):
        return f"{show_value(old)} → {show_value(new)}"
    return ""


def _covered(pattern: str, by: list[str]) -> bool:
    wanted = domains.parse(pattern)
    return any(domains.parse(p).covers(wanted) for p in by)
