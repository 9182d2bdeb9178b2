"""The load of ``bench/serve_load.py``, bounded, in the suite: 50 concurrent runs through
one ``codex-box serve``, native and Docker mixed, every exit code right, then nothing left
on the host and an audit log that verifies with exactly the records the runs imply."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import serve_load


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("native_available", "docker_available")
def test_fifty_concurrent_runs_all_right_and_nothing_left(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = serve_load.main(["--runs", "50", "--docker-share", "0.3"])
    report = capsys.readouterr().out
    assert status == 0, report
    assert "native + docker" in report and "failures: 0" in report, report
    assert "leftovers on the host: 0" in report and "verified, as expected" in report, report
