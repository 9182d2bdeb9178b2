"""Pure path arithmetic shared by the rows that reason about paths (policy, compile, host).

Owns: ``inside`` — the one definition of "this path lies beneath that root".
"""

from __future__ import annotations


def inside(path: str, root: str) -> bool:
    """``path`` is ``root`` or lies beneath it (both absolute, normalised)."""
    return path == root or path.startswith(root.rstrip("/") + "/")
