"""``--backend native`` is probed quick (no user-namespace trial fork); a run that then
fails in setup is re-probed in full, so the user still learns what the kernel lacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.backends import base
from orchestrator.backends.native import backend as native_backend
from orchestrator.backends.native import host as native_host
from orchestrator.core.errors import BackendUnavailable, SandboxSetupError
from tests.unit.backends.test_linux_translate_golden import fixed_spec


def _no_fork_allowed() -> str | None:
    raise AssertionError("a quick probe must not fork to try a user namespace")


def test_a_quick_probe_does_not_try_a_user_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native_host.landlock, "abi_version", lambda: 7)
    monkeypatch.setattr(native_host, "_loads", lambda library: True)
    monkeypatch.setattr(native_host, "_user_namespace_problem", _no_fork_allowed)
    facts = native_host.probe(quick=True)
    assert facts.available and facts.user_namespaces is None
    # Landlock and libseccomp are still checked: a quick probe never skips those.
    monkeypatch.setattr(native_host.landlock, "abi_version", lambda: 0)
    assert not native_host.probe(quick=True).available
    monkeypatch.setattr(native_host.landlock, "abi_version", lambda: 7)
    monkeypatch.setattr(native_host, "_loads", lambda library: False)
    assert not native_host.probe(quick=True).available


def test_select_probes_a_named_backend_quick_and_auto_in_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[bool] = []
    real = native_backend.LinuxBackend.probe

    def probe(
        self: native_backend.LinuxBackend, spec: object = None, *, quick: bool = False
    ) -> native_host.NativeFacts:
        seen.append(quick)
        return real(self, None, quick=True)  # never fork in a unit test

    monkeypatch.setattr(native_backend.LinuxBackend, "probe", probe)
    base.select("native")
    base.select("auto", order=("native",))
    assert seen == [True, False]


def test_a_failed_setup_after_a_quick_probe_names_what_the_kernel_lacks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Launch:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def execute(self) -> None:
            raise SandboxSetupError("native sandbox setup failed: PermissionError: unshare")

    monkeypatch.setattr(native_backend, "Launch", Launch)
    monkeypatch.setattr(native_host.landlock, "abi_version", lambda: 7)
    monkeypatch.setattr(native_host, "_loads", lambda library: True)
    monkeypatch.setattr(native_host, "_user_namespace_problem", lambda: "no userns here")
    spec = fixed_spec("offline", codex_home=tmp_path)
    with pytest.raises(BackendUnavailable, match="native: no userns here"):
        native_backend.LinuxBackend().run(spec)
    # When the full probe finds nothing missing, the setup error itself is the answer.
    monkeypatch.setattr(native_host, "_user_namespace_problem", lambda: None)
    with pytest.raises(SandboxSetupError, match="PermissionError: unshare"):
        native_backend.LinuxBackend().run(spec)
