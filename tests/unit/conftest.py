"""Fixtures shared by the unit tests (on top of ``tests/conftest.py``).

Everything here is pure Python: no engine, no kernel sandbox feature.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.compile.spec import Request
from orchestrator.core.options import LaunchOptions
from orchestrator.profiles.store import ProfileStore

LAUNCH_FIELDS = frozenset(f.name for f in dataclasses.fields(LaunchOptions))


@pytest.fixture
def store(codex_home: Path) -> ProfileStore:
    return ProfileStore(codex_home=codex_home)


@pytest.fixture
def write_profile(codex_home: Path) -> Callable[[str, str], Path]:
    """``write_profile("mine", "extends: workspace\\n")`` → $CODEX_HOME/profiles/mine.yaml."""

    def write(stem: str, text: str) -> Path:
        directory = codex_home / "profiles"
        directory.mkdir(exist_ok=True)
        path = directory / f"{stem}.yaml"
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def make_request(workspace: Path, home: Path, codex_home: Path) -> Callable[..., Request]:
    def make(**overrides: Any) -> Request:
        fields: dict[str, Any] = {
            "argv": ("true",),
            "workspace": str(workspace),
            "cwd": str(workspace),
            "environ": {"PATH": "/usr/bin:/bin", "HOME": str(home)},
            "home": str(home),
            "codex_home": str(codex_home),
            "uid": 1000,
            "gid": 1000,
            "run_id": "run-1",
            "session_id": "session-1",
        }
        launch = {k: overrides.pop(k) for k in LAUNCH_FIELDS & overrides.keys()}
        fields.update(overrides)
        return Request(**fields, options=LaunchOptions(**launch))

    return make


@pytest.fixture
def print_env() -> dict[str, str]:
    """Extra env for `run --print-spec --backend native`: none is needed — a named
    backend is not probed when only its plan is printed, so no kernel feature is."""
    return {}
