"""Loaded only by CLI unit tests that put this directory on PYTHONPATH.

`codex-box run --print-spec` runs nothing, but it still selects a backend, and the
native backend's availability probe asks the kernel for Landlock. Unit tests must not
depend on kernel features, so when CODEX_BOX_TEST_ASSUME_NATIVE=1 the probe answers
"available". Only ever combined with --print-spec or with a path that is refused
before a backend is selected: nothing is launched under this shim.
"""

import os

if os.environ.get("CODEX_BOX_TEST_ASSUME_NATIVE") == "1":
    from orchestrator.backends import linux
    from orchestrator.backends.base import Availability

    def _assumed(self: object) -> Availability:
        return Availability(True, "assumed available by the unit tests (--print-spec only)")

    linux.LinuxBackend.availability = _assumed  # type: ignore[method-assign]
