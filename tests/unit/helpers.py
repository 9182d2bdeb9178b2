"""Small helpers shared by the unit tests (import them; fixtures live in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def audit_records(codex_home: Path) -> list[dict[str, Any]]:
    path = codex_home / "audit.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
