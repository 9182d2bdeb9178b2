"""The proxy runs on uvloop when it is installed and on asyncio's own loop when it is
not: the tests that run a ProxySession take the ``loop_kind`` fixture and run on both,
so every behaviour they pin holds whichever loop a user's install has."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator

import pytest

from tests.unit.netproxy.test_egress_proxy import Origin


@pytest.fixture(params=["uvloop", "asyncio"])
def loop_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "asyncio":
        monkeypatch.setitem(sys.modules, "uvloop", None)  # its import fails, as if absent
    elif importlib.util.find_spec("uvloop") is None:
        pytest.skip("uvloop is not installed")
    return str(request.param)


@pytest.fixture
def origin() -> Iterator[Origin]:
    """A loopback origin server of the test's own, closed after it."""
    server = Origin()
    try:
        yield server
    finally:
        server.close()
