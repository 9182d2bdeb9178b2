"""The escape suite runs each ``box`` attack twice: one-shot (``codex-box run``) and
through ``codex-box exec`` in a session (issue 20: an exec is confined exactly like a
run). Positive controls run both ways too."""

from __future__ import annotations

import pytest


@pytest.fixture(params=("run", "exec"))
def via(request: pytest.FixtureRequest) -> str:
    return str(request.param)
