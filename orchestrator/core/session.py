"""The vocabulary of sessions: a sandbox started once that runs many commands.

Owns: ``ExecCall`` (one command the session's keeper has already judged, audited and
given its environment: what a backend's session sandbox runs), ``ExecEnd`` (how it
ended, as the sandbox saw it), and the rules for session ids and names.
Does not own: keeping a session alive (``runner.sessions``), or how a backend runs an
exec (each backend's ``start_session``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UsageError

ID_PATTERN = re.compile(r"^[0-9a-f]{12}$")  # runner.context.new_id()
# A name is chosen by a person; it must never look like an id (two ways to mean one
# session) nor hold a path separator (it names nothing on disk).
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name) or ID_PATTERN.match(name):
        raise UsageError(
            f"invalid session name {name!r}",
            hint="start with a letter; then letters, digits, '_', '.', '-' (at most 63)",
        )
    return name


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecCall:
    """One command to run inside a live session, after the policy allowed it."""

    exec_id: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # the complete environment (the profile's filter applied)
    cwd: str  # absolute, inside the sandbox
    timeout_s: float | None = None  # the sandbox kills the exec's whole tree at it: 124
    detach: bool = False  # returns once started; its tree lives until the session stops


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecEnd:
    """How one exec ended, as the sandbox saw it (a detached one: that it started)."""

    exit_code: int
    signal: int | None = None  # the signal that ended the exec's main process
    timed_out: bool = False
    detail: str = ""  # e.g. "foo: No such file or directory (inside the sandbox)"
    cwd_missing: bool = False  # its working directory could not be entered: nothing ran
    # SIGKILLed while the session's memory cgroup counted a new OOM kill. Execs share
    # that cgroup: of two killed at once, both are said to be out of memory.
    oom_killed: bool = False
