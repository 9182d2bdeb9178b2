"""Fixtures of the runner's unit tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A directory whose Unix socket paths fit sun_path (108 bytes), which
    pytest-xdist's tmp_path may not; removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="cbx-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
