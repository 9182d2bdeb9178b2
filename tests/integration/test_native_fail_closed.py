"""Fail closed: when any part of the sandbox cannot be set up, nothing runs (exit 125).

Each case breaks one input of a real launch — the seccomp policy, a write root — and
checks both the error and that the command left no trace.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from orchestrator.backends.native.backend import LinuxBackend
from orchestrator.compile.spec import Request, compile_spec
from orchestrator.core.errors import EXIT_SETUP, SandboxSetupError
from orchestrator.core.spec import SandboxSpec
from orchestrator.profiles.store import ProfileStore

pytestmark = pytest.mark.usefixtures("native_available")


@pytest.fixture
def spec(workspace: Path, home: Path, codex_home: Path) -> SandboxSpec:
    request = Request(argv=("sh", "-c", "touch ran"), workspace=str(workspace),
                      cwd=str(workspace), environ={"PATH": "/usr/bin:/bin"}, home=str(home),
                      codex_home=str(codex_home), uid=os.getuid(), gid=os.getgid(),
                      run_id="failclosed", session_id="failclosed")
    spec = compile_spec(ProfileStore(codex_home=codex_home).get("workspace"), request)
    # The runner makes protected-path placeholders; calling the backend directly, leave
    # them out so each case breaks exactly one thing.
    return dataclasses.replace(spec, protected_paths=())


def _refused(spec: SandboxSpec, workspace: Path) -> str:
    with pytest.raises(SandboxSetupError) as info:
        LinuxBackend().run(spec)
    assert info.value.exit_code == EXIT_SETUP
    assert not (workspace / "ran").exists(), "the command ran without its sandbox"
    return info.value.message


def test_the_control_runs(spec: SandboxSpec, workspace: Path) -> None:
    assert LinuxBackend().run(spec).exit_code == 0
    assert (workspace / "ran").exists()


def test_a_missing_seccomp_policy_runs_nothing(spec: SandboxSpec, workspace: Path) -> None:
    broken = dataclasses.replace(spec, seccomp_profile=str(workspace.parent / "none.json"))
    assert "cannot read seccomp profile" in _refused(broken, workspace)


def test_a_policy_naming_a_syscall_libseccomp_does_not_know_runs_nothing(
        spec: SandboxSpec, workspace: Path, tmp_path: Path) -> None:
    policy = json.loads(Path(spec.seccomp_profile or "").read_text())
    policy["syscalls"].append({"names": ["no_such_syscall_xyz"], "action": "SCMP_ACT_ERRNO"})
    path = tmp_path / "future.json"
    path.write_text(json.dumps(policy))
    broken = dataclasses.replace(spec, seccomp_profile=str(path))
    assert "does not know the syscall 'no_such_syscall_xyz'" in _refused(broken, workspace)


def test_a_malformed_seccomp_policy_runs_nothing(
        spec: SandboxSpec, workspace: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"defaultAction": "SCMP_ACT_MAYBE"}')
    broken = dataclasses.replace(spec, seccomp_profile=str(path))
    assert "unsupported seccomp action" in _refused(broken, workspace)


def test_a_write_root_that_cannot_be_bound_runs_nothing(
        spec: SandboxSpec, workspace: Path) -> None:
    broken = dataclasses.replace(
        spec, writable_roots=(*spec.writable_roots, str(workspace.parent / "vanished")))
    assert "setup failed" in _refused(broken, workspace)
