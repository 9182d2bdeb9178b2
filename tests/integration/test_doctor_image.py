"""``codex-box doctor --image``: what an image lacks for CI jobs, found by running it."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.conftest import Ran


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_doctor_image(engine: str, request: pytest.FixtureRequest, cli: Callable[..., Ran]) -> None:
    request.getfixturevalue(f"{engine}_available")
    ready = cli("doctor", "--image", "codex-box/base", "--backend", engine, "--json")
    assert ready.returncode == 0, ready.stderr
    report = json.loads(ready.stdout)
    assert report["ready"] is True and report["backend"] == engine
    assert report["tools"]["git"]["path"] == "/usr/bin/git"
    assert report["tools"]["gitlab-runner"]["path"] is None  # optional, and absent
    busybox = cli("doctor", "--image", "codex-box/test", "--backend", engine)
    assert busybox.returncode == 1
    assert [ln.split()[1] for ln in busybox.stdout.splitlines() if ln.split()[:1] == ["bash"]] == [
        "MISSING"
    ]
    missing = cli("doctor", "--image", "codex-box/no-such-image", "--backend", engine)
    assert missing.returncode == 125 and "no-such-image" in missing.stderr
