"""The documented example inputs of the runner container hooks (tests/data/github_hooks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[4] / "tests" / "data" / "github_hooks"


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return data


@pytest.fixture
def prepare_example() -> dict[str, Any]:
    return example("prepare-job.json")


@pytest.fixture
def script_example() -> dict[str, Any]:
    return example("run-script-step.json")


@pytest.fixture
def container_example() -> dict[str, Any]:
    return example("run-container-step.json")
