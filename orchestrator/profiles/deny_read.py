"""``filesystem.deny_read`` in a profile file: each entry checked, and a user profile's
list merged with what it extends.

Owns: the entry syntax (``~/path``, ``/abs/path``, a relative glob such as ``**/.env``;
``*`` ``?`` ``[..]`` and ``**`` as a whole component) and the merge: entries add to
the base's list, and in a user profile ``"!ENTRY"`` removes one the base lists — a
named, deliberate loosening like ``filesystem.unprotect``. A ``.codex-profile`` may only
add (``profiles.parser`` refuses a loosening; ``profiles.widening`` reports one).
Does not own: expanding entries to paths (``compile.deny_read``) or masking them
(each backend).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.core.errors import ConfigError, did_you_mean
from orchestrator.core.profile import Profile

KEY = "filesystem.deny_read"
Fail = Callable[[str, str, str], ConfigError]


def check_entry(item: str, *, removal_allowed: bool, fail: Fail) -> None:
    entry = item[1:] if item.startswith("!") and removal_allowed else item
    problem = deny_entry_problem(entry)
    if problem:
        raise fail(
            KEY,
            f"{item!r} {problem}",
            "write ~/path, /abs/path or a relative glob such as **/.env "
            '(globs: * ? [..] and ** as a whole component); "!ENTRY" removes one',
        )


def merge(values: dict[str, Any], base: Profile, fail: Fail) -> None:
    """``values[KEY]`` as the file lists it → the profile's whole list."""
    if KEY not in values:
        return
    listed: tuple[str, ...] = values[KEY]
    removed = [e[1:] for e in listed if e.startswith("!")]
    added = [e for e in listed if not e.startswith("!")]
    for entry in removed:
        if entry not in base.deny_read:
            raise fail(
                KEY,
                f"!{entry} removes an entry '{base.name}' does not list",
                f"{did_you_mean(entry, base.deny_read)}remove one of: "
                f"{', '.join(base.deny_read) or '(none)'}",
            )
        if entry in added:
            raise fail(KEY, f"{entry} is both added and removed", "list it only once")
    values[KEY] = tuple(dict.fromkeys(e for e in (*base.deny_read, *added) if e not in removed))


MAX_DENY_ENTRY = 1024  # characters


def deny_entry_problem(entry: str) -> str:
    """Why ``entry`` is no deny_read entry, or "" when it is one."""
    if not entry or len(entry) > MAX_DENY_ENTRY:
        return f"is empty or longer than {MAX_DENY_ENTRY} characters"
    if not entry.isprintable():
        return "holds a control character"
    if entry.startswith("~") and not entry.startswith("~/"):
        return "is not ~/path (~user is not supported)"
    rest = entry[2:] if entry.startswith("~/") else entry.lstrip("/") if entry[0] == "/" else entry
    if entry.startswith("//"):
        return "starts with //"
    parts = rest.split("/")
    if not rest or all(p == "**" for p in parts):
        return "would mask everything below / or ~ or the workspace"
    if any(p in ("", ".", "..") for p in parts):
        return "has an empty, . or .. component (or a trailing /)"
    if any("**" in p and p != "**" for p in parts):
        return "uses ** inside a component (** must stand alone: **/.env)"
    return ""
