"""Pure path arithmetic shared by the rows that reason about paths (policy, compile, host).

Owns: ``inside`` — the one definition of "this path lies beneath that root" — and
``codex_home``, where codex-box keeps its state (here, not in ``settings``, so that
``codex-box exec`` finds its session without loading the config machinery).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def codex_home(environ: Mapping[str, str]) -> Path:
    """``$CODEX_HOME``, default ``~/.codex`` (absolute, not required to exist)."""
    raw = environ.get("CODEX_HOME") or str(Path(environ.get("HOME") or "~").expanduser() / ".codex")
    return Path(os.path.abspath(Path(raw).expanduser()))


def inside(path: str, root: str) -> bool:
    """``path`` is ``root`` or lies beneath it (both absolute, normalised)."""
    return path == root or path.startswith(root.rstrip("/") + "/")
