"""Finding processes by a marker in their command line (host-wide: sandboxed and
containerised processes are host processes too)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

PROFILES = ("offline", "net-read-only", "workspace", "workspace-net")
WRITE_PROFILES = ("workspace", "workspace-net")
READ_ONLY_PROFILES = ("offline", "net-read-only")


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def marker_for(kind: str) -> tuple[str, str]:
    """(marker, shell code setting $M to it). The marker itself never appears in the
    command line of codex-box or of the outer shell, only in processes named after it,
    so "the marked process exists" cannot be satisfied by codex-box's own argv."""
    head, tail = f"codex-box-{kind}-", uuid.uuid4().hex[:8]
    return head + tail, f'M="{head}""{tail}"'
