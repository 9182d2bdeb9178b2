"""Finding and killing a process tree, and waiting until a process is gone.

Owns: walking /proc for descendants (for `trusted`, which has no pid namespace to
tear down) and bounded waits. Does not own: deciding when to kill.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time


def stat_field(pid: int, index: int) -> str | None:
    """Field ``index`` of /proc/PID/stat counted after the command name (0 = state),
    or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            # The command name may hold spaces and parentheses: split after the last ')'.
            return handle.read().rsplit(")", 1)[1].split()[index]
    except (OSError, IndexError):
        return None


def parent_of(pid: int) -> int | None:
    ppid = stat_field(pid, 1)
    return int(ppid) if ppid is not None and ppid.isdigit() else None


def start_time(pid: int) -> str | None:
    return stat_field(pid, 19)


def children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (ppid := parent_of(int(entry))) is not None:
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    tree, out, todo = children_map(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(pid: int, *, rounds: int = 5) -> None:
    """SIGKILL ``pid``'s descendants until none is left (bounded: a fork bomb races us)."""
    for _ in range(rounds):
        found = descendants(pid)
        if not found:
            return
        for child in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        time.sleep(0.01)


def wait_gone(pid: int, *, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while os.path.exists(f"/proc/{pid}"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
