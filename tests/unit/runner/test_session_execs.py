"""What a session's keeper accepts as an exec, and where the policy judges it from."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.errors import UsageError
from orchestrator.core.profile import Capabilities, Network
from orchestrator.core.spec import SandboxSpec
from orchestrator.policy import gate
from orchestrator.runner.sessions import execs


@pytest.mark.parametrize(
    "message",
    [
        {"argv": 5},
        {"argv": []},
        {"argv": ["tr\0ue"]},
        {"argv": ["true", 3]},
        {"argv": ["true"], "env": 5},
        {"argv": ["true"], "env": [1]},
        {"argv": ["true"], "environ": ["A=1"]},
        {"argv": ["true"], "cwd": 7},
        {"argv": ["true"], "cwd": "a\0b"},
    ],
)
def test_a_malformed_exec_is_refused_as_usage(message: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        execs._argv(message)


def test_a_well_formed_exec_is_accepted() -> None:
    message = {"argv": ["sh", "-c", "x"], "env": ["A=1"], "environ": {}, "cwd": "sub"}
    assert execs._argv(message) == ("sh", "-c", "x")


def spec(workspace: str, cwd: str | None = None) -> SandboxSpec:
    return SandboxSpec(
        run_id="r", session_id="s", profile="workspace", argv=("rm", "-rf", "hooks"),
        workspace=workspace, env=(("PATH", "/usr/bin:/bin"),), network=Network.NONE,
        sandboxed=True, rootfs_read_only=True, private_tmp=True,
        writable_roots=(workspace,), protected_paths=(f"{workspace}/.git",),
        seccomp_profile=None, capabilities=Capabilities.NONE, uid=0, gid=0, cwd=cwd,
    )


def test_the_policy_judges_from_the_exec_cwd_as_the_kernel_resolves_it(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / "real").mkdir(parents=True)
    os.symlink(workspace / "real", workspace / "link")  # planted by an earlier exec
    assert gate.context_of(spec(str(workspace)), home="/root").cwd == str(workspace)
    judged = gate.context_of(spec(str(workspace), cwd=f"{workspace}/link"), home="/root")
    assert judged.cwd == str(workspace / "real")


def test_rm_of_a_protected_directory_is_forbidden_from_inside_it_too(tmp_path: Path) -> None:
    """The red-team's case: `--cwd .git` then `rm -rf hooks` must be judged as what it
    is, a write under the protected .git, not as a write in the workspace."""
    workspace = tmp_path / "ws"
    (workspace / ".git" / "hooks").mkdir(parents=True)
    from_top = replace(spec(str(workspace)), argv=("rm", "-rf", ".git/hooks"))
    from_inside = spec(str(workspace), cwd=f"{workspace}/.git")
    top = gate.evaluate(from_top, home="/root", codex_home=tmp_path / "home")
    inside = gate.evaluate(from_inside, home="/root", codex_home=tmp_path / "home")
    assert top.decision.label == "forbidden"
    assert inside.decision.label == top.decision.label
