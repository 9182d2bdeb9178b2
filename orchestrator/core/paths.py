"""Pure path arithmetic shared by the rows that reason about paths (policy, compile, host).

Owns: ``inside`` — the one definition of "this path lies beneath that root" — and
where codex-box keeps its state (``codex_home``; here, not in ``settings``, so that
``codex-box exec`` finds its session without loading the config machinery, and as a
string first: ``exec`` loads no ``pathlib`` either).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # no `typing` on `exec`'s path (orchestrator/__init__)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


def inside(path: str, root: str) -> bool:
    """``path`` is ``root`` or lies beneath it (both absolute, normalised)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def codex_home_dir(environ: Mapping[str, str]) -> str:
    """``$CODEX_HOME``, default ``~/.codex`` (absolute, not required to exist)."""
    raw = environ.get("CODEX_HOME")
    if not raw:
        home = environ.get("HOME") or os.path.expanduser("~")
        raw = os.path.join(os.path.expanduser(home), ".codex")
    return os.path.abspath(os.path.expanduser(raw))


def codex_home(environ: Mapping[str, str]) -> Path:
    from pathlib import Path  # not on `exec`'s path: start-up time

    return Path(codex_home_dir(environ))
