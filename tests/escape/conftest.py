"""The escape suite runs each ``box`` attack twice: one-shot (``codex-box run``) and
through ``codex-box exec`` in a session (issue 20: an exec is confined exactly like a
run). Positive controls run both ways too."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(params=("run", "exec"))
def via(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def scratch_root(prefix: str) -> Iterator[Path]:
    """A fresh directory under /var/tmp (not /tmp: a private /tmp would hide it from
    the sandbox), removed after the test: the root of a test's HOME and workspace."""
    path = Path("/var/tmp") / f"{prefix}-{uuid.uuid4().hex[:10]}"
    path.mkdir(mode=0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def scratch_workspace(root: Path) -> Path:
    """``root``/proj with a README any profile may read: a test's workspace."""
    (root / "proj").mkdir()
    (root / "proj" / "README").write_text("workspace-readable\n")
    return root / "proj"
