"""What runs, sessions and servers killed with SIGKILL left behind, removed: ``codex-box gc``,
and ``codex-box serve`` as it starts.

Owns: the order of the sweeps (the server's own record first, while nothing of it runs;
then dead sessions, placeholders, each backend's leftovers). Each sweep removes only
what provably has no live owner. Does not own: any one sweep.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from orchestrator.backends import base
from orchestrator.compile import placeholders
from orchestrator.core.errors import CodexBoxError

from . import owned
from .sessions import store


def leftovers(home: Path, *, serving: bool = False) -> list[str]:
    """Remove everything left behind; one line per thing removed. ``serving``: the
    caller is the server holding the lock (so the record is of a server now dead)."""
    removed: list[str] = []
    if serving or not owned.server_running(home):
        removed += owned.sweep(home)
    removed += [f"sessions: removed {r}" for r in store.sweep_dead(home)]
    removed += [f"placeholders: removed {r}" for r in placeholders.sweep(home / "run")]
    for name in base.REGISTRY:
        with contextlib.suppress(CodexBoxError, ImportError):
            removed += [f"{name}: removed {r}" for r in base.load(name).gc()]
    return removed
