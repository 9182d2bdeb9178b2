"""The proxy runs on uvloop when it is installed and on asyncio's own loop when it is
not: the tests that run a ProxySession take the ``loop_kind`` fixture and run on both,
so every behaviour they pin holds whichever loop a user's install has."""

from __future__ import annotations

import importlib.util
import sys

import pytest


@pytest.fixture(params=["uvloop", "asyncio"])
def loop_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "asyncio":
        monkeypatch.setitem(sys.modules, "uvloop", None)  # its import fails, as if absent
    elif importlib.util.find_spec("uvloop") is None:
        pytest.skip("uvloop is not installed")
    return str(request.param)
